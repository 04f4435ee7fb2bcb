import pytest

from accounts.models import Theme


@pytest.fixture
def alice_client(client, user):
    client.force_login(user)
    return client


def test_the_settings_page_offers_every_theme_with_a_preview_swatch(alice_client):
    page = alice_client.get("/accounts/settings/").content.decode()

    assert len(Theme.values) >= 6
    for theme in Theme.values:
        assert f'data-theme="{theme}"' in page
    assert page.count('class="swatch"') == len(Theme.values)


def test_a_chosen_theme_is_kept_and_applied_to_every_page(alice_client, user):
    response = alice_client.post("/accounts/settings/", {"theme": "forest"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.theme == "forest"
    assert '<html lang="en" data-theme="forest">' in alice_client.get("/").content.decode()


def test_an_unknown_theme_is_refused(alice_client, user):
    response = alice_client.post("/accounts/settings/", {"theme": "neon"})

    assert response.status_code == 400
    user.refresh_from_db()
    assert user.theme == "light"
