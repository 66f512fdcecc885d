import factory

from core.models import Site
from subscriptions.models import Webhook, generate_secret


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    id = factory.Sequence(lambda n: f"site_test{n}")
    name = factory.Sequence(lambda n: f"Test site {n}")


class WebhookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Webhook

    site = factory.SubFactory(SiteFactory)
    url = "https://hooks.example.com/agentbot"
    events = factory.LazyFunction(lambda: ["*"])
    format = "agentbot"
    secret = factory.LazyFunction(generate_secret)
