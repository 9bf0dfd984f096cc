"""The connector agents' API (`/api/agent/v1`): pairing with a one-time code, then, with the
agent's own bearer token, the long-polled work, its answers and the agent's health.

No login and no CSRF token (an agent has neither): a call proves itself by its token, which
names one workspace's one connection; everything it reads or writes is that connection's.
Answers: 401 for a token no agent holds (revoked: the agent stops and says so), 404 for a
request id the connection is not waiting for, 413 over the size limit, never a 500 for
anything an agent can send."""

from __future__ import annotations

import io
import logging
import tomllib
import zipfile
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.extensions import csrf, db, limiter
from app.integrations import agent_relay
from app.integrations.models import IntegrationConnection
from tenants.binding import tenant_context

log = logging.getLogger(__name__)

blueprint = Blueprint("agent_api", __name__, url_prefix="/api/agent/v1")
csrf.exempt(blueprint)
# A page of Tally's day book (a date range of vouchers) as XML; a month of a busy company's
# vouchers is a few MB.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# Long polls end before proxies' usual 60 s idle limit.
LONGEST_WAIT = 25
REVOKED = (
    "This agent's access was revoked or never granted. Pair it again with a new code from the "
    "Tally page in Duebook."
)


@blueprint.url_value_preprocessor
def _limit_body_size(endpoint, values):
    request.max_content_length = MAX_ANSWER_BYTES


@blueprint.errorhandler(RequestEntityTooLarge)
def too_large(error):
    return jsonify(error="The answer is larger than Duebook accepts in one request."), 413


def _agent() -> tuple[int, int] | None:
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    found = agent_relay.agent_of(db.session, token)
    db.session.commit()
    return found


@blueprint.get("/duebook-tally-agent.zip")
def package():
    """The agent's source package, for `pip install --user <this address>` on the Tally
    computer: the agent ships with the Duebook it talks to, so the two always fit."""
    folder = Path(current_app.root_path).parent / "agent"
    if not (folder / "pyproject.toml").is_file():
        return jsonify(error="The agent's package is not on this server."), 404
    version = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["version"]
    top = f"duebook-tally-agent-{version}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(
            [folder / "pyproject.toml", folder / "README.md"]
            + list((folder / "duebook_tally_agent").glob("*.py"))
        ):
            archive.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return Response(
        buffer.getvalue(),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{top}.zip"'},
    )


@blueprint.post("/pair")
@limiter.limit(lambda: current_app.config.get("AGENT_PAIR_RATE_LIMIT", "10 per minute"))
def pair():
    data = request.get_json(silent=True) or {}
    code, machine = str(data.get("code") or ""), str(data.get("machine") or "")
    try:
        tenant_id, connection_id = agent_relay.take_pairing_code(db.session, code)
    except agent_relay.AgentRefused as refusal:
        db.session.rollback()
        return jsonify(error=str(refusal)), 400
    db.session.commit()  # the code is used up, whatever the pairing's outcome
    try:
        with tenant_context(db.session, tenant_id) as session:
            token = agent_relay.finish_pairing(session, connection_id, machine)
    except agent_relay.AgentRefused as refusal:
        return jsonify(error=str(refusal)), 400
    return jsonify(token=token)


@blueprint.get("/work")
def work():
    agent = _agent()
    if agent is None:
        return jsonify(error=REVOKED), 401
    try:
        wait = min(max(float(request.args.get("wait", LONGEST_WAIT)), 0), LONGEST_WAIT)
    except ValueError:
        wait = LONGEST_WAIT
    item = agent_relay.next_work(*agent, wait)
    if item is None:
        return "", 204
    return jsonify(item)


@blueprint.post("/answers/<work_id>")
def answer(work_id: str):
    agent = _agent()
    if agent is None:
        return jsonify(error=REVOKED), 401
    if not agent_relay.give_answer(*agent, work_id, request.get_data(cache=False)):
        return jsonify(error="No request of this agent has that id (answered, or gone)."), 404
    return "", 204


@blueprint.post("/health")
def health():
    agent = _agent()
    if agent is None:
        return jsonify(error=REVOKED), 401
    tenant_id, connection_id = agent
    facts = request.get_json(silent=True)
    if not isinstance(facts, dict):
        return jsonify(error="Send the agent's health as a JSON object."), 400
    with tenant_context(db.session, tenant_id) as session:
        connection = session.get(IntegrationConnection, connection_id)
        if connection is None or connection.status == "disconnected":
            return jsonify(error=REVOKED), 401
        agent_relay.record_health(session, connection, facts)
    return "", 204
