"""manage.py create_demo_users: a researcher, an annotator and an API user for trying the site locally."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from annotation.roles import ANNOTATOR, API_USER, RESEARCHER

DEMO_USERS = (
    # (user name, password, group, staff: may use the admin)
    ("researcher", "twin-researcher", RESEARCHER, True),
    ("annotator", "twin-annotator", ANNOTATOR, False),
    ("engineer", "twin-engineer", API_USER, False),
)


class Command(BaseCommand):
    help = "Creates (or resets) the demo users and prints their credentials (and the API token). DEBUG only."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("demo users have well-known passwords; they are only made when DEBUG is on")
        users = get_user_model()
        for username, password, group_name, is_staff in DEMO_USERS:
            user, created = users.objects.get_or_create(username=username)
            user.is_staff = is_staff
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name=group_name))
            self.stdout.write(f"  {group_name:<11} user: {username:<11} password: {password}")
            if group_name == API_USER:
                token, _ = Token.objects.get_or_create(user=user)
                self.stdout.write(f"  {'':<11} API token: {token.key}")
