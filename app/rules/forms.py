"""The rule form: the condition builder's and the actions builder's inputs read into a rule's
data and back, and the builder's edits (add a condition or a group, remove one, add, remove or
move an action). Plain forms, no script: each builder button posts the whole form and htmx
swaps the builder in (without htmx the page comes back whole).

Conditions are posted as `node` (each node's id: "n", "n.0", "n.0.1", in order) with
`kind.<id>` for a group (all, any, none), and `field.<id>`, `op.<id>`, `value.<id>`,
`value2.<id>` (between) for a condition. Actions as `action` (their positions) with
`type.<i>` and `<param>.<i>`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.terminology import reworded
from app.rules import conditions
from app.rules.actions import ACTION_LABELS

GROUP_KINDS = {"all": "All of", "any": "Any of", "none": "None of"}
ACTION_PARAMS = (
    "field",
    "value",
    "tag",
    "user_id",
    "reason",
    "days",
    "policy_id",
    "terms",
    "role",
    "template_id",
    "endpoint_id",
    "field_key",
)
MAX_NODES = 200


def empty_condition(entity: str) -> dict:
    first = conditions.fields_of(entity)[0]
    return {"field": first.path, "op": conditions.OPERATORS[first.type][0], "value": ""}


def new_rule_values(entity: str = "clients") -> dict:
    return {
        "name": "",
        "entity": entity,
        "trigger": "schedule",
        "overdue_days": "",
        "priority": "100",
        "stop_after": "",
        "enabled": "1",
        "group": {"kind": "all", "children": [empty_condition(entity)]},
        "actions": [{"type": "add_tag"}],
    }


# -- stored tree <-> builder ---------------------------------------------------------------


def group_of(tree: dict) -> dict:
    """A stored tree as the builder's nested groups (a `not` is a "none of" group)."""
    if "all" in tree or "any" in tree:
        kind = "all" if "all" in tree else "any"
        return {"kind": kind, "children": [_node_of(child) for child in tree[kind]]}
    if "not" in tree:
        inner = tree["not"]
        children = inner.get("any", [inner])
        return {"kind": "none", "children": [_node_of(child) for child in children]}
    return {"kind": "all", "children": [_node_of(tree)]}


def _node_of(tree: dict) -> dict:
    if "field" in tree:
        value = tree.get("value")
        if isinstance(value, list) and tree["op"] == "between":
            return {"field": tree["field"], "op": tree["op"], "value": value[0], "value2": value[1]}
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        return {"field": tree["field"], "op": tree["op"], "value": "" if value is None else value}
    return group_of(tree)


def tree_of(group: dict) -> dict:
    """The builder's groups as the tree to check and store."""
    children = [tree_of(c) if "kind" in c else _leaf_of(c) for c in group["children"]]
    if group["kind"] == "none":
        return {"not": {"any": children}}
    return {group["kind"]: children}


def _leaf_of(node: dict) -> dict:
    leaf = {"field": node.get("field", ""), "op": node.get("op", "")}
    if node.get("op") == "between":
        leaf["value"] = [node.get("value", ""), node.get("value2", "")]
    elif node.get("op") not in conditions.NO_VALUE:
        leaf["value"] = node.get("value", "")
    return leaf


# -- posted form -> builder -----------------------------------------------------------------


def read_group(form: Mapping) -> dict:
    """The builder's root group from the posted form (a group with no condition when the
    form has none)."""
    ids = [i for i in form.getlist("node") if _valid_id(i)][:MAX_NODES]
    nodes: dict[str, dict] = {"n": {"kind": form.get("kind.n", "all"), "children": []}}
    for node_id in ids:
        if node_id == "n":
            continue
        parent = nodes.get(node_id.rsplit(".", 1)[0])
        if parent is None or "kind" not in parent:
            continue
        if f"kind.{node_id}" in form:
            node = {"kind": form.get(f"kind.{node_id}"), "children": []}
        else:
            node = {
                "field": form.get(f"field.{node_id}", ""),
                "op": form.get(f"op.{node_id}", ""),
                "value": form.get(f"value.{node_id}", ""),
                "value2": form.get(f"value2.{node_id}", ""),
            }
        if node.get("kind") is not None and node["kind"] not in GROUP_KINDS:
            node["kind"] = "all"
        parent["children"].append(node)
        nodes[node_id] = node
    root = nodes["n"]
    if root["kind"] not in GROUP_KINDS:
        root["kind"] = "all"
    return root


def _valid_id(node_id: str) -> bool:
    parts = node_id.split(".")
    return parts[0] == "n" and all(p.isdigit() and len(p) < 4 for p in parts[1:])


def read_actions(form: Mapping) -> list[dict]:
    actions = []
    for position in form.getlist("action")[: 2 * 20]:
        if not position.isdigit():
            continue
        action = {"type": form.get(f"type.{position}", "")}
        for param in ACTION_PARAMS:
            if f"{param}.{position}" in form:
                action[param] = form.get(f"{param}.{position}", "")
        actions.append(action)
    return actions


def read_values(form: Mapping) -> dict:
    """Everything the form posted, as the page shows it again."""
    return {
        "name": form.get("name", ""),
        "entity": form.get("entity", "clients"),
        "trigger": form.get("trigger", ""),
        "overdue_days": form.get("overdue_days", ""),
        "priority": form.get("priority", ""),
        "stop_after": form.get("stop_after", ""),
        "enabled": form.get("enabled", ""),
        "group": read_group(form),
        "actions": read_actions(form),
    }


def rule_input(values: dict) -> dict:
    """The form's values as the rules service takes them."""
    return {
        **{k: values[k] for k in ("name", "entity", "trigger", "overdue_days", "priority")},
        "stop_after": bool(values["stop_after"]),
        "enabled": bool(values["enabled"]),
        "conditions": tree_of(values["group"]),
        "actions": [_typed_action(action) for action in values["actions"]],
    }


def _typed_action(action: dict) -> dict:
    return {key: value for key, value in action.items() if value != "" or key == "type"}


def values_of(rule) -> dict:
    return {
        "name": rule.name,
        "entity": rule.entity,
        "trigger": rule.trigger,
        "overdue_days": str(rule.overdue_days or ""),
        "priority": str(rule.priority),
        "stop_after": "1" if rule.stop_after else "",
        "enabled": "1" if rule.enabled else "",
        "group": group_of(rule.conditions),
        "actions": [
            {key: ("" if value is None else str(value)) for key, value in action.items()}
            for action in rule.actions
        ],
    }


# -- the builder's edits --------------------------------------------------------------------


def apply_edit(values: dict, edit: str) -> None:
    """One builder button: add-condition:<group>, add-group:<group>, remove:<node>,
    add-action, remove-action:<i>, up-action:<i>; anything else (a field or the entity
    changed) only shows the builder again for the new choices."""
    what, _, where = edit.partition(":")
    entity = values["entity"] if values["entity"] in ("clients", "invoices") else "clients"
    if what in ("add-condition", "add-group"):
        group = _find(values["group"], where)
        if group is not None and "kind" in group:
            new = (
                empty_condition(entity)
                if what == "add-condition"
                else {"kind": "any", "children": [empty_condition(entity)]}
            )
            group["children"].append(new)
    elif what == "remove" and where != "n":
        parent = _find(values["group"], where.rsplit(".", 1)[0])
        index = _last_index(where)
        if parent is not None and index is not None and index < len(parent["children"]):
            del parent["children"][index]
    elif what == "add-action":
        values["actions"].append({"type": "add_tag"})
    elif what in ("remove-action", "up-action") and where.isdigit():
        index = int(where)
        actions = values["actions"]
        if index < len(actions) and what == "remove-action":
            del actions[index]
        elif 0 < index < len(actions):
            actions[index - 1], actions[index] = actions[index], actions[index - 1]
    _fit_to_entity(values["group"], entity)


def _find(group: dict, node_id: str) -> dict | None:
    if not _valid_id(node_id):
        return None
    node = group
    for part in node_id.split(".")[1:]:
        children = node.get("children", [])
        if int(part) >= len(children):
            return None
        node = children[int(part)]
    return node


def _last_index(node_id: str) -> int | None:
    last = node_id.rsplit(".", 1)[-1]
    return int(last) if last.isdigit() else None


def _fit_to_entity(group: dict, entity: str) -> None:
    """Conditions whose field is not one of the entity's (the entity changed), or whose
    operator does not fit the field's type (the field changed), start again from the
    entity's first field or the type's first operator."""
    for child in group["children"]:
        if "kind" in child:
            _fit_to_entity(child, entity)
            continue
        found = conditions.resolve(entity, child.get("field", ""))
        if found is None:
            child.update(empty_condition(entity))
        elif child.get("op") not in conditions.OPERATORS[found.type]:
            child["op"] = conditions.OPERATORS[found.type][0]


def action_choices() -> list[tuple[str, str]]:
    return [(action, reworded(label)) for action, label in ACTION_LABELS.items()]


def field_for(entity: str, path: str) -> Any:
    return conditions.resolve(entity, path)
