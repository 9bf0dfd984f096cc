"""The ops page (admins): queue depths, this workspace's backlog, and its own failed jobs only,
each of which can be put back on its queue; another workspace's job is neither shown nor
retried."""

from __future__ import annotations

from jobs.queues import get_queue
from tests.helpers import csrf_token_from


def explode(*, tenant_id):
    """A job that fails, as a broken job of this tenant would."""
    raise RuntimeError(f"exploded for tenant {tenant_id}")


def failed_job_of(app, tenant_id, run_jobs) -> str:
    with app.app_context():
        job = get_queue("default").enqueue(explode, tenant_id=tenant_id)
    run_jobs(["default"])
    return job.id


def test_ops_lists_only_this_workspaces_failed_jobs_and_retries_them(
    app, client, make_tenant, make_user, login, run_jobs
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    other = make_tenant()
    mine = failed_job_of(app, tenant.id, run_jobs)
    theirs = failed_job_of(app, other.id, run_jobs)
    login(client, owner)

    page = client.get(f"/t/{tenant.slug}/ops/")
    assert page.status_code == 200
    assert f'data-job-id="{mine}"' in page.text
    assert f"RuntimeError: exploded for tenant {tenant.id}" in page.text
    assert theirs not in page.text and f"tenant {other.id}" not in page.text
    assert '<th scope="row">default</th>' in page.text  # queue depths

    token = csrf_token_from(page.text)
    base = f"/t/{tenant.slug}/ops/jobs"
    assert client.post(f"{base}/{theirs}/retry", data={"csrf_token": token}).status_code == 404
    assert client.post(f"{base}/no-such-job/retry", data={"csrf_token": token}).status_code == 404
    with app.app_context():
        queue = get_queue("default")
        assert theirs in queue.failed_job_registry.get_job_ids()  # untouched

    response = client.post(f"{base}/{mine}/retry", data={"csrf_token": token})
    assert response.status_code == 303
    assert "back in its queue" in client.get(response.headers["Location"]).text
    with app.app_context():
        queue = get_queue("default")
        assert mine in queue.get_job_ids()
        assert mine not in queue.failed_job_registry.get_job_ids()


def test_ops_shows_the_workspaces_outbox_backlog(
    app, client, db_session, make_tenant, make_user, login
):
    from tests.test_messages_page import add_message

    owner = make_user()
    tenant = make_tenant(owner=owner)
    add_message(db_session, app, tenant, status="dead")
    add_message(db_session, app, tenant, status="pending")  # due in 30 days: waiting
    add_message(db_session, app, make_tenant(), status="dead")
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/ops/")
    backlog = page.text.split('data-testid="outbox-backlog"')[1].split("</dl>")[0]
    assert "<dt>Waiting</dt><dd>1 " in backlog
    assert ">1</a>" in backlog  # one dead letter, linked to the failed messages


def test_finance_cannot_see_or_use_the_ops_page(
    app, client, make_tenant, make_user, add_member, login, run_jobs
):
    tenant = make_tenant()
    finance = make_user()
    add_member(tenant, finance, role="finance")
    job_id = failed_job_of(app, tenant.id, run_jobs)
    login(client, finance)
    assert client.get(f"/t/{tenant.slug}/ops/").status_code == 403
    page = client.get(f"/t/{tenant.slug}/")
    assert "Operations" not in page.text
    response = client.post(
        f"/t/{tenant.slug}/ops/jobs/{job_id}/retry", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert response.status_code == 403
