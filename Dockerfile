# The web and worker image. REQUIREMENTS picks what it installs: requirements.txt for the web app (small, no
# torch), requirements-ml.txt for mining workers, requirements-gpu.txt on a CUDA base for GPU nodes (see README).
FROM python:3.11-slim
ARG REQUIREMENTS=requirements.txt
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=config.settings.production
WORKDIR /app
COPY requirements*.txt .
RUN pip install --no-cache-dir -r ${REQUIREMENTS}
COPY . .
RUN DJANGO_SECRET_KEY=build-only-build-only-build-only-build-only-build-only \
    DJANGO_ALLOWED_HOSTS=build DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --no-input -v 0
RUN useradd --create-home twin && mkdir -p /data && chown twin /data
USER twin
ENV TWIN_DATA_DIR=/data
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
