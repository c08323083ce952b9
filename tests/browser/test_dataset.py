"""A researcher freezes a snapshot from the site, reads its statistics and plots, builds an export from the
exports panel (htmx) and downloads it with its checksum."""

import hashlib
import re

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotation.models import Image
from tests.browser.conftest import BROWSER_TEST
from tests.conftest import image_bytes
from tests.factories import ResearcherFactory
from training.models import DatasetExport

pytestmark = BROWSER_TEST


def test_a_researcher_freezes_reads_and_exports_a_snapshot(new_page, reviewed_catalog, screenshots):
    from playwright.sync_api import expect

    for image in Image.objects.all():  # real pictures, for the export
        default_storage.delete(image.file.name)
        default_storage.save(image.file.name, ContentFile(image_bytes(size=(96, 72), seed=image.pk)))
    page = new_page(ResearcherFactory())
    page.goto("/")
    page.get_by_role("link", name="Dataset").click()
    page.get_by_role("link", name="Freeze a new snapshot").click()
    page.get_by_label("Name").fill("twin")
    page.get_by_label("Eval fraction").fill("0")
    page.get_by_role(
        "button", name="Freeze"
    ).click()  # the tests run tasks eagerly: frozen within the request

    expect(page).to_have_url(re.compile(r"/dataset/\d+/$"))
    expect(page.locator("h1")).to_have_text("twin v1")
    expect(page.locator("#snapshot .stats")).to_contain_text("19")
    expect(page.locator("#statistics svg")).to_have_count(4)
    expect(page.locator("#chart-by_source rect")).not_to_have_count(0)
    expect(page.locator("#exports")).to_contain_text("No exports yet.")  # loaded by htmx
    page.screenshot(path=screenshots / "snapshot.png", full_page=True)

    page.locator("#export-create select[name=format]").select_option("plain")
    page.get_by_role("button", name="Build export").click()
    row = page.locator('#exports tr[data-format="plain"]')
    expect(row).to_contain_text("Ready")
    export = DatasetExport.objects.get()
    expect(row).to_contain_text(export.sha256)
    with page.expect_download() as download_info:
        row.get_by_role("link", name="Download").click()
    path = download_info.value.path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == export.sha256
    assert download_info.value.suggested_filename == "twin-v1-plain.zip"
