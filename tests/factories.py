"""factory_boy factories for the catalog and users."""

import hashlib

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile

from annotation.models import Category, Image, Instance, Product
from annotation.roles import ANNOTATOR, API_USER, RESEARCHER


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pass-1234")


class ResearcherFactory(UserFactory):
    is_staff = True

    @factory.post_generation
    def role(self, create: bool, extracted, **kwargs) -> None:
        if create:
            self.groups.add(Group.objects.get(name=RESEARCHER))


class AnnotatorFactory(UserFactory):
    @factory.post_generation
    def role(self, create: bool, extracted, **kwargs) -> None:
        if create:
            self.groups.add(Group.objects.get(name=ANNOTATOR))


class ApiUserFactory(UserFactory):
    @factory.post_generation
    def role(self, create: bool, extracted, **kwargs) -> None:
        if create:
            self.groups.add(Group.objects.get(name=API_USER))


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"category {n}")
    supercategory = "Home & Kitchen"


class InstanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Instance

    category = factory.SubFactory(CategoryFactory)
    name = factory.Sequence(lambda n: f"object {n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    external_id = factory.Sequence(lambda n: f"P{n:05d}")
    title = factory.Sequence(lambda n: f"Product {n}")
    category = factory.SubFactory(CategoryFactory)
    instance = factory.SubFactory(InstanceFactory, category=factory.SelfAttribute("..category"))


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    product = factory.SubFactory(ProductFactory)
    sha256 = factory.Sequence(lambda n: hashlib.sha256(f"image {n}".encode()).hexdigest())
    file = factory.LazyAttribute(
        lambda image: ContentFile(b"not decoded in these tests", name=f"{image.sha256}.jpg")
    )
    width = 64
    height = 64
