from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-123"


class Command(BaseCommand):
    help = "Create the demo account (if missing) and print its login."

    def handle(self, *args, **options):
        User = get_user_model()
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(
                username="demo", email=DEMO_EMAIL, password=DEMO_PASSWORD
            )
        EmailAddress.objects.get_or_create(
            user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
        )
        self.stdout.write(
            self.style.SUCCESS(f"Demo login: email {DEMO_EMAIL}  password {DEMO_PASSWORD}")
        )
