"""The Tally connector agent and its relay (issue 20's transport): the real agent package talks
to the real Duebook app (in-process, through httpx's WSGI transport) and to Tally on its local
port. Pairing with a one-time code gives the agent a token of its own; a second agent is refused
unless the code was made to replace the first; a revoked token stops the agent with words; a
request a connector queues reaches Tally through the agent and Tally's answer comes back,
streamed, to the one connection that asked; the agent's health reaches the connection."""

from __future__ import annotations

import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from duebook_tally_agent import cli
from duebook_tally_agent.relay import Agent, PairingRefused, Revoked, pair
from duebook_tally_agent.store import Store
from redis import Redis
from sqlalchemy import select

from app.integrations import agent_relay
from app.integrations.connectors.accounting import BooksOffline
from app.integrations.connectors.tally import AGENT_SILENT_AFTER
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.sync.books import build_connector
from tests.helpers import tenant_session

SERVER = "http://duebook.test"
TALLY_ANSWER = (
    b"<ENVELOPE><BODY><DATA><COLLECTION><LEDGER NAME='Sahyadri'/></COLLECTION></DATA></BODY>"
    b"</ENVELOPE>"
)


class Tally:
    """TallyPrime on its port, as far as the relay cares: it answers a GET saying it runs,
    and a POSTed envelope with XML (recorded)."""

    def __init__(self, answer: bytes = TALLY_ANSWER):
        self.answer = answer
        self.received: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, text="<RESPONSE>TallyPrime Server is Running</RESPONSE>")
        self.received.append(request.read())
        return httpx.Response(200, content=self.answer, headers={"Content-Type": "text/xml"})


@pytest.fixture
def duebook(app):
    """The app as the agent reaches it. The agent streams Tally's answer up (chunked, no
    length); gunicorn marks such a body as ending with the request (`wsgi.input_terminated`),
    and so does this, in its place."""

    def served_as_by_gunicorn(environ, start_response):
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return httpx.WSGITransport(app=served_as_by_gunicorn)


@pytest.fixture
def tally_connection(app, db_session, make_tenant, make_user):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant)
    connection = IntegrationConnection(provider="tally", settings={})
    session.add(connection)
    session.commit()
    return tenant, session, connection


def code_for(app, session, connection, replace=False) -> str:
    with app.app_context():
        code = agent_relay.new_pairing_code(session, connection, replace)
    session.commit()
    return code


def test_a_code_pairs_one_agent_once_and_a_second_only_to_replace_it(
    app, duebook, tally_connection
):
    tenant, session, connection = tally_connection
    code = code_for(app, session, connection)
    token = pair(SERVER, code.lower(), transport=duebook)  # typed in lower case: still the code
    assert token.startswith("dbta_")
    with pytest.raises(PairingRefused, match="not valid"):
        pair(SERVER, code, transport=duebook)  # once
    # The token is kept only as its digest.
    keys = session.scalars(
        select(ProviderAccount.account_key).where(ProviderAccount.provider == "agent")
    ).all()
    assert token not in keys and len(keys) == 1

    second = code_for(app, session, connection)
    with pytest.raises(PairingRefused, match="is paired with this workspace"):
        pair(SERVER, second, transport=duebook)
    replacing = code_for(app, session, connection, replace=True)
    newer = pair(SERVER, replacing, transport=duebook)
    # The first agent stops: Duebook no longer knows its token.
    first = Agent(SERVER, token, transport=duebook, tally_transport=httpx.MockTransport(Tally()))
    with pytest.raises(Revoked, match="revoked"):
        first.step(wait=0)
    working = Agent(SERVER, newer, transport=duebook, tally_transport=httpx.MockTransport(Tally()))
    assert working.step(wait=0) is False  # no work yet, but welcome


def test_an_expired_code_is_refused(app, db_session, duebook, tally_connection):
    tenant, session, connection = tally_connection
    code = code_for(app, session, connection)
    session.expire_all()
    connection = session.get(IntegrationConnection, connection.id)
    pairing = dict(connection.settings["pairing"])
    pairing["expires_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    connection.settings = {**connection.settings, "pairing": pairing}
    session.commit()
    with pytest.raises(PairingRefused, match="expired"):
        pair(SERVER, code, transport=duebook)


def test_work_goes_to_tally_through_the_agent_and_the_answer_to_the_one_who_asked(
    app, duebook, tally_connection, make_tenant, make_user, db_session
):
    tenant, session, connection = tally_connection
    token = pair(SERVER, code_for(app, session, connection), transport=duebook)
    tally = Tally()
    agent = Agent(SERVER, token, transport=duebook, tally_transport=httpx.MockTransport(tally))
    request = b"<ENVELOPE><HEADER><TALLYREQUEST>Export</TALLYREQUEST></HEADER></ENVELOPE>"
    with app.app_context():
        work_id = agent_relay.post_work(tenant.id, connection.id, request)
    assert agent.step(wait=0) is True
    assert tally.received == [request]
    with app.app_context():
        assert agent_relay.wait_answer(tenant.id, connection.id, work_id, timeout=2) == (
            TALLY_ANSWER
        )
        # Answered once: the same id again is none of this connection's requests.
        assert not agent_relay.give_answer(tenant.id, connection.id, work_id, b"again")
    # Another workspace's agent cannot take or answer this workspace's work.
    other_tenant = make_tenant(owner=make_user())
    other_session = tenant_session(db_session, other_tenant)
    other_connection = IntegrationConnection(provider="tally", settings={})
    other_session.add(other_connection)
    other_session.commit()
    other_token = pair(SERVER, code_for(app, other_session, other_connection), transport=duebook)
    with app.app_context():
        waiting = agent_relay.post_work(tenant.id, connection.id, request)
    stranger = httpx.Client(
        base_url=SERVER, transport=duebook, headers={"Authorization": f"Bearer {other_token}"}
    )
    assert stranger.get("/api/agent/v1/work", params={"wait": 0}).status_code == 204
    assert stranger.post(f"/api/agent/v1/answers/{waiting}", content=b"<x/>").status_code == 404
    assert agent.step(wait=0) is True  # still there for its own agent


def test_a_large_answer_passes_whole_and_tally_down_comes_back_in_words(
    app, duebook, tally_connection
):
    tenant, session, connection = tally_connection
    token = pair(SERVER, code_for(app, session, connection), transport=duebook)
    big = b"<ENVELOPE>" + b"<VOUCHER>" + b"x" * 4_000_000 + b"</VOUCHER></ENVELOPE>"
    agent = Agent(SERVER, token, transport=duebook, tally_transport=httpx.MockTransport(Tally(big)))
    with app.app_context():
        work_id = agent_relay.post_work(tenant.id, connection.id, b"<ENVELOPE/>")
    agent.step(wait=0)
    with app.app_context():
        assert agent_relay.wait_answer(tenant.id, connection.id, work_id, timeout=2) == big

    def closed(request):
        raise httpx.ConnectError("connection refused")

    down = Agent(SERVER, token, transport=duebook, tally_transport=httpx.MockTransport(closed))
    with app.app_context():
        work_id = agent_relay.post_work(tenant.id, connection.id, b"<ENVELOPE/>")
    down.step(wait=0)
    with app.app_context():
        answer = agent_relay.wait_answer(tenant.id, connection.id, work_id, timeout=2)
    assert answer.startswith(b"<AGENTERROR>Tally did not answer")


def test_the_agent_reports_whether_tally_answers(app, duebook, tally_connection):
    tenant, session, connection = tally_connection
    token = pair(SERVER, code_for(app, session, connection), transport=duebook)
    Agent(SERVER, token, transport=duebook, tally_transport=httpx.MockTransport(Tally())).step(
        wait=0
    )
    session.expire_all()
    agent = session.get(IntegrationConnection, connection.id).settings["agent"]
    assert (
        agent["reachable"] is True and "TallyPrime Server is Running" in agent["software_version"]
    )
    assert agent["machine"]


def test_a_revoked_agent_is_refused_everywhere(app, duebook, tally_connection):
    tenant, session, connection = tally_connection
    token = pair(SERVER, code_for(app, session, connection), transport=duebook)
    with app.app_context():
        agent_relay.revoke(session, connection)
    session.commit()
    client = httpx.Client(
        base_url=SERVER, transport=duebook, headers={"Authorization": f"Bearer {token}"}
    )
    for method, path in (
        ("GET", "/api/agent/v1/work?wait=0"),
        ("POST", "/api/agent/v1/answers/abc"),
        ("POST", "/api/agent/v1/health"),
    ):
        answer = client.request(method, path, json={})
        assert answer.status_code == 401 and "Pair it again" in answer.json()["error"]
    assert (
        client.get("/api/agent/v1/work", headers={"Authorization": "Bearer x"}).status_code == 401
    )


def test_the_command_keeps_the_token_only_for_the_user(
    app, duebook, tally_connection, tmp_path, monkeypatch, capsys
):
    tenant, session, connection = tally_connection
    monkeypatch.setenv("DUEBOOK_AGENT_NO_KEYRING", "1")
    code = code_for(app, session, connection)
    monkeypatch.setattr(cli, "pair", lambda server, code: pair(server, code, transport=duebook))
    store = Store(tmp_path / "agent")
    assert cli.main(["pair", "--server", SERVER, "--code", code], store=store) == 0
    assert "Paired with" in capsys.readouterr().out
    token_file = tmp_path / "agent" / "token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert store.load()[0] == SERVER
    assert cli.main(["status"], store=store) == 0
    assert cli.main(["forget"], store=store) == 0 and store.load() is None
    assert cli.main(["run"], store=store) == 2  # not paired: says so and stops
    assert "pair` first" in capsys.readouterr().err


def test_duebook_serves_the_agent_pip_installs(client, tmp_path):
    """The Tally page's install command: pip installs the package Duebook serves."""
    import subprocess
    import sys

    answer = client.get("/api/agent/v1/duebook-tally-agent.zip")
    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    archive = tmp_path / "duebook-tally-agent.zip"
    archive.write_bytes(answer.data)
    target = tmp_path / "installed"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(archive),
        ],
        check=True,
    )
    assert (target / "duebook_tally_agent" / "relay.py").is_file()
    installed = subprocess.run(
        [sys.executable, "-c", "import duebook_tally_agent as a; print(a.__version__)"],
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.strip() == "0.1.0"


def test_waits_longer_than_redis_socket_timeout_end_in_an_answer_not_an_error(
    app, duebook, tally_connection
):
    """The app's Redis connections stop reading after 5 s: an agent's long poll with nothing to
    do is a 204 (not a 500 that sends the agent into its back-off), and an answer Tally takes
    longer than a connection's socket timeout to give still reaches the connector waiting."""
    tenant, session, connection = tally_connection
    token = pair(SERVER, code_for(app, session, connection), transport=duebook)
    agent = httpx.Client(
        base_url=SERVER, transport=duebook, headers={"Authorization": f"Bearer {token}"}
    )
    assert agent.get("/api/agent/v1/work", params={"wait": 6}, timeout=30).status_code == 204

    with app.app_context():
        work_id = agent_relay.post_work(tenant.id, connection.id, b"<ENVELOPE/>")

    def tally_answers_late():
        time.sleep(4)
        with app.app_context():
            agent_relay.give_answer(tenant.id, connection.id, work_id, b"<late/>")

    later = threading.Thread(target=tally_answers_late)
    later.start()
    with app.app_context():
        impatient = Redis.from_url(app.config["REDIS_URL"], socket_timeout=3)
        try:
            answer = agent_relay.wait_answer(
                tenant.id, connection.id, work_id, timeout=20, redis=impatient
            )
        finally:
            later.join()
    assert answer == b"<late/>"


def test_a_run_longer_than_the_agents_silence_limit_keeps_asking_it(app, duebook, tally_connection):
    """A run reads the agent's last report once, at its start: an agent not heard from for
    minutes stops the run at its first request, but a run that goes on longer than that while
    its agent answers is not taken for one whose agent stopped."""
    tenant, session, connection = tally_connection
    token = pair(SERVER, code_for(app, session, connection), transport=duebook)
    agent = Agent(SERVER, token, transport=duebook, tally_transport=httpx.MockTransport(Tally()))
    silent = (datetime.now(UTC) - AGENT_SILENT_AFTER - timedelta(minutes=1)).isoformat()
    with app.app_context():
        stopped = build_connector("tally", {"agent": {"seen_at": silent}}, {})
        stopped.relay = (tenant.id, connection.id)
        stopped.answer_timeout = 2
        with pytest.raises(BooksOffline, match="last heard from"):
            stopped.ask(b"<ENVELOPE/>")

        recent = datetime.now(UTC).isoformat()
        connector = build_connector("tally", {"agent": {"seen_at": recent}}, {})
        connector.relay = (tenant.id, connection.id)
        connector.answer_timeout = 5
        for minutes_later in (0, 10):
            # The run's settings age as it goes on; the agent answers all along.
            connector.settings["agent"]["seen_at"] = (
                datetime.now(UTC) - timedelta(minutes=minutes_later)
            ).isoformat()
            answering = threading.Thread(target=agent.step, kwargs={"wait": 3})
            answering.start()
            assert connector.ask(b"<ENVELOPE/>") == TALLY_ANSWER
            answering.join()
