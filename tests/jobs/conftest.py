"""Fixtures of the job tests: jobs in each state, and clients signed in as each role."""

import pytest
from django.test import Client

from jobs.models import Job
from jobs.services import job_create, job_start


@pytest.fixture
def queued_job(db) -> Job:
    return job_create(kind="test_job", parameters={"manifest_path": "/data/catalog.jsonl", "source": "shop"})


@pytest.fixture
def running_job(queued_job: Job) -> Job:
    return job_start(job=queued_job, total=5, message="Warming up")


@pytest.fixture
def researcher_client(researcher) -> Client:
    client = Client()
    client.force_login(researcher)
    return client


@pytest.fixture
def annotator_client(annotator) -> Client:
    client = Client()
    client.force_login(annotator)
    return client
