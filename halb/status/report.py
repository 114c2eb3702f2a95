"""What `halb status` prints: a line per node and the verdict, or one JSON object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from halb.status.remote import stack_fingerprints
from halb.status.verdict import UNITS, NodeState, Verdict, certificate_notes

if TYPE_CHECKING:
    from halb.config import HalbConfig


def report(cfg: HalbConfig, states: list[NodeState], verdict: Verdict, secrets_known: bool = True) -> str:
    plan = cfg.plan
    prints = stack_fingerprints(cfg)
    lines = []
    for node, state in zip(cfg.nodes, states, strict=True):
        if state.reachable:
            units = ", ".join(f"{u} {getattr(state, u)} ({state.enabled.get(u, '?')})" for u in UNITS)
            detail = f"VRRP {state.vrrp_state}, VIP {'held' if state.holds_vip else 'not held'}, {units}"
            detail += "; in maintenance" if node.maintenance else ""
            detail += "; out of VRRP for an unfinished rollout" if state.held else ""
            detail += f"; {state.why}" if state.why else ""
            detail += f"; DRIFT in {', '.join(state.drift)}" if state.drift else "; files as rendered"
            notes = certificate_notes(state, prints, *_days())
            detail += f"; certificates: {'; '.join(notes)}" if notes else ""
        else:
            detail = f"cannot reach it ({state.error})"
        lines.append(f"{node.name} {plan.address(node.name)} ({node.role}): {detail}")
    if not secrets_known:
        lines.append("(secret files not compared: the stack's secrets are not available here)")
    return "\n".join([*lines, verdict.summary])


def as_json(cfg: HalbConfig, states: list[NodeState], verdict: Verdict) -> dict[str, object]:
    plan = cfg.plan
    return {
        "verdict": verdict.word,
        "exit_code": verdict.exit_code,
        "summary": verdict.summary,
        "vip": str(plan.vip),
        # Every VIP (`halb:vips`; the one VIP otherwise) and the nodes that hold it now.
        "vips": [
            {
                "name": v.name,
                "address": str(v.address),
                "preferred": v.preferred,
                "holders": [
                    s.name for s in states if (s.holds_vip if v.address == plan.vip else s.others.get(str(v.address)))
                ],
            }
            for v in cfg.plan.vips
        ],
        "nodes": [
            # File hashes stay out: a hash of a short password file could be brute-forced.
            {
                "name": n.name,
                "address": str(plan.address(n.name)),
                "role": n.role,
                **{k: v for k, v in vars(s).items() if k != "hashes"},
            }
            for n, s in zip(cfg.nodes, states, strict=True)
        ],
    }


def _days() -> tuple[str, str]:
    """Today and the day WARN_DAYS from now (YYYY-MM-DD, UTC)."""
    from datetime import timedelta

    from halb.config.tls import WARN_DAYS, utcnow

    now = utcnow()
    return f"{now:%Y-%m-%d}", f"{now + timedelta(days=WARN_DAYS):%Y-%m-%d}"
