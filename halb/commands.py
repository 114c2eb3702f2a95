"""Shell scripts for each provisioning step: pure functions of the config and rendered files.

Each step's script is what `pulumi preview --diff` shows (main file contents included,
line by line); secret file contents arrive on the command's stdin and never appear in
a script. Every script is idempotent and safe to re-run, and runs as root through
`sudo -n` when the SSH user is not root (no reliance on sshd's AcceptEnv).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
from collections.abc import Mapping

from halb.config import HalbConfig
from halb.config.nodes import HOST_KEY_RE
from halb.config.words import Directive
from halb.plan import SHARED_VRRP_DIRECTIVES
from halb.render import LO_LABEL, PATHS, SCRIPT_USER, NodeFile, backends, haproxy_structure, step_script

PACKAGES = ("keepalived", "haproxy", "curl", "socat", "python3")  # python3: vrrp-resign (raw VRRP socket)
# BGP mode: FRR instead of keepalived; frr-pythontools has frr-reload.py (Debian; RHEL's frr has it)
BGP_PACKAGES = {
    "debian": ("haproxy", "frr", "frr-pythontools", "curl", "socat"),
    "rhel": ("haproxy", "frr", "curl", "socat", "python3"),
}
FRR_RELOAD = "/usr/lib/frr/frr-reload.py"
ADMIN_SOCKET = PATHS["admin_socket"]
STRUCTURE = PATHS["structure"]
OWNER_DIR = PATHS["owner_dir"]
HELD = PATHS["vrrp_held"]
PENDING = PATHS["vrrp_pending"]
# Every file halb installs (the teardown removes them all).
MANAGED = (
    "keepalived_conf",
    "keepalived_auth",
    "haproxy_cfg",
    "haproxy_secrets",
    "haproxy_dropin",
    "keepalived_dropin",
    "haproxy_watch_unit",
    "vrrp_guard_unit",
    "handoff_unit",
    "metrics_unit",
    "node_exporter_unit",
    "tmpfiles",
)
WATCH = "halb-haproxy-watch"  # the service that judges haproxy's health for keepalived
GUARD = "halb-vrrp-guard"  # the service that keeps a node out of a VRRP partition
HANDOFF = "halb-handoff"  # passes the packets of connections this node does not know to its peer
METRICS = "halb-metrics"  # keeps halb's metrics current for the node exporter
NODE_EXPORTER = "halb-node-exporter"  # the distribution's node exporter, as halb runs it
# The distribution's own units for the node exporter: halb runs it as NODE_EXPORTER instead.
PACKAGE_EXPORTERS = ("prometheus-node-exporter", "node_exporter")
# The node exporter's package in each family (EPEL's on RHEL).
EXPORTER_PACKAGES = {"debian": "prometheus-node-exporter", "rhel": "golang-github-prometheus-node-exporter"}


def halb_units(cfg: HalbConfig) -> list[str]:
    """halb's own services on a node, besides haproxy and keepalived (BGP mode: FRR)."""
    monitoring = [METRICS, NODE_EXPORTER] if cfg.monitoring.node_exporter else []
    if cfg.mode == "bgp":
        return [WATCH, *monitoring]
    return [WATCH, GUARD, *([HANDOFF] if cfg.keepalived.handoff else []), *monitoring]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


FILE_TAG = "HALB_EOF"  # the delimiters are fixed, so a changed file shows in a diff as its changed lines only
SCRIPT_TAG = "HALB_SCRIPT"


def _delimited(content: str, tag: str) -> str:
    """content, newline-terminated, checked not to end its heredoc early."""
    if not content.endswith("\n"):
        content += "\n"
    if tag in content.splitlines():
        raise ValueError(f"a line of the content is the heredoc delimiter {tag}; it cannot be written safely")
    return content


def _heredoc(content: str, target: str) -> str:
    """`cat > target` with content verbatim (quoted delimiter: nothing is expanded)."""
    return f"cat > {target} <<'{FILE_TAG}'\n{_delimited(content, FILE_TAG)}{FILE_TAG}\n"


def as_root(script: str, user: str) -> str:
    """Wrap a script so it runs as root for any SSH user, keeping stdin for the script."""
    runner = "sh" if user == "root" else "sudo -n sh"
    tag = SCRIPT_TAG
    script = _delimited(script, tag)
    return (
        "halb_script=$(mktemp) || exit 1\n"
        f"cat > \"$halb_script\" <<'{tag}'\n{script}{tag}\n"
        f'{runner} "$halb_script"\n'
        'halb_rc=$?\nrm -f "$halb_script"\nexit $halb_rc\n'
    )


def install_file(f: NodeFile) -> str:
    """Write one file atomically (temp file beside it, then rename)."""
    path = shlex.quote(f.path)
    tmp = shlex.quote(f.path + ".halb-new")
    return (
        f"install -d -m 0755 {shlex.quote(posixpath.dirname(f.path))}\n"
        + _heredoc(f.content, tmp)
        + f"chmod {f.mode} {tmp}\nmv -f {tmp} {path}\n"
    )


def wait_script() -> str:
    """Wait until the node has finished booting (a VM reboots during guest customization), then
    print its SSH host key for `recorded_host_key`."""
    return step_script("steps/wait.sh.j2")


HOST_KEY_LINE = "halb: host key "


def recorded_host_key(node: str, stdout: str) -> str:
    """The host key (`type base64`) the `wait` step printed: what the first connection met."""
    for line in stdout.splitlines():
        if line.startswith(HOST_KEY_LINE) and re.match(HOST_KEY_RE, key := line[len(HOST_KEY_LINE) :].strip()):
            return key
    raise ValueError(
        f"{node}: the wait step printed no SSH host key (no readable /etc/ssh/ssh_host_*_key.pub); "
        f"set halb:nodes[].hostKey for {node} (e.g. 'ssh-ed25519 AAAAC3...') to pin it yourself"
    )


def packages_script(cfg: HalbConfig) -> str:
    """Install what is missing of halb's packages (openssl too when a service ends TLS: the TLS
    step checks keys with it; nftables with `keepalived.handoff`), with apt or dnf/yum by `osFamily`."""
    tls = ["openssl"] if any(svc.tls is not None for svc in cfg.haproxy.services) else []
    exporter = cfg.monitoring.node_exporter

    def family(name: str) -> list[str]:
        if cfg.mode == "bgp":
            base = [*BGP_PACKAGES[name], *tls]
        else:
            base = [*PACKAGES, *tls, *(["nftables"] if cfg.keepalived.handoff else [])]
        return [*base, *([EXPORTER_PACKAGES[name]] if exporter else [])]

    return step_script("steps/packages.sh.j2", os_family=cfg.os_family, debian=family("debian"), rhel=family("rhel"))


FIREWALL_STATE = f"{OWNER_DIR}/firewall"  # the rules halb opened, one per line
UFW_BEFORE_RULES = "/etc/ufw/before.rules"  # ufw has no `proto vrrp`: halb's VRRP rule lives here


def firewall(rules: list[str], state: str = FIREWALL_STATE, before_rules: str = UFW_BEFORE_RULES) -> str:
    """Bring an active firewalld or ufw to exactly `rules` (an empty list closes everything halb
    opened): rules recorded in `state` by an earlier deploy and no longer wanted are removed.
    IPv6 VRRP rules go to ufw's before6.rules, beside `before_rules`."""
    return step_script(
        "steps/firewall.sh.j2",
        wanted=Directive("\n".join(rules)),  # halb.plan.firewall_rules' own words: validated addresses and ports
        state=state,
        state_dir=posixpath.dirname(state),
        before_rules=before_rules,
        before6_rules=posixpath.join(posixpath.dirname(before_rules), "before6.rules"),
    )


def vrid_script(files: list[NodeFile], seconds: float) -> str:
    """The VRID pre-flight: before the node runs the stack's VRIDs, listen `seconds` on its interface
    for other routers that use one (vrrp_adverts.py, as rendered, on stdin to python3; exit 1
    naming each). The script holds the VRIDs, so a new VRID runs it again; nothing else does."""
    if not seconds:
        return 'echo "halb: no VRID pre-flight (keepalived.vridProbeSeconds is 0)"\n'
    adverts = next(f for f in files if f.path == PATHS["vrrp_adverts"])
    return f"python3 - {seconds:g} <<'{FILE_TAG}'\n{_delimited(adverts.content, FILE_TAG)}{FILE_TAG}\n"


def system_script(cfg: HalbConfig, node: str, files: list[NodeFile]) -> str:
    """The script user, the system files, the host firewall and SELinux (templates/steps/system.sh.j2)."""
    return step_script(
        "steps/system.sh.j2",
        script_user=SCRIPT_USER,
        installs=Directive("".join(install_file(f) for f in files if f.step == "system")),
        firewall=Directive(firewall(list(cfg.plan.firewall[node]))),
        units=halb_units(cfg),
        node=node,
    )


def _config_script(
    main: NodeFile, secret: NodeFile | None, stage_parent: str, validate: str, apply: str, what: str, prepare: str = ""
) -> str:
    """Stage, validate, then move into place and apply (templates/steps/staged.sh.j2). A rejected
    file never replaces the live one."""
    name = posixpath.basename(main.path)
    return step_script(
        "steps/staged.sh.j2",
        stage_parent=stage_parent,
        write_main=Directive(_heredoc(main.content, f'"$stage/{name}"')),
        name=name,
        mode=main.mode,
        path=main.path,
        secret_name=posixpath.basename(secret.path) if secret is not None else "",
        secret_mode=secret.mode if secret is not None else "",
        secret_path=secret.path if secret is not None else "",
        validate=Directive(validate),
        what=Directive(what),
        withhold=Directive(withhold_filter(posixpath.basename(secret.path)) if secret is not None else "cat"),
        prepare=Directive(prepare),
        apply=Directive(apply),
    )


def withhold_filter(secret_name: str) -> str:
    """A filter for a validator's output: a line about the staged secret file is withheld, and
    every word of that file (4 characters or more, quotes stripped) is masked wherever it appears."""
    program = r"""NR == FNR { for (i = 1; i <= NF; i++) { w = $i; gsub(/^'|'$/, "", w); if (length(w) >= 4) s[w] = 1 }; next }
index($0, f) { print "  (a message about " f " withheld: it holds a secret)"; next }
{ for (w in s) { o = ""; r = $0; while ((i = index(r, w)) > 0) { o = o substr(r, 1, i - 1) "<secret>"; r = substr(r, i + length(w)) }; $0 = o r }; print }"""
    return f'awk -v f={secret_name} {shlex.quote(program)} "$stage/{secret_name}" -'


def runtime_commands(cfg: HalbConfig) -> str:
    """haproxy runtime API commands that bring every server to its configured weight and state,
    one per line (the script joins them with `;`, so a diff shows the one that changed), from the
    config's servers in the backends haproxy.cfg declares (render.backends)."""
    cmds = []
    for svc in cfg.haproxy.services:
        for backend, servers, _ in backends(svc):
            for srv in servers:
                state = "maint" if srv.state == "disabled" else "ready"
                cmds += [
                    f"set server {backend}/{srv.name} weight {srv.live_weight}",
                    f"set server {backend}/{srv.name} state {state}",
                ]
    return "\n".join(cmds)


def haproxy_script(files: list[NodeFile], cfg: HalbConfig, node: str) -> str:
    main = next(f for f in files if f.path == PATHS["haproxy_cfg"])
    secret = next(f for f in files if f.path == PATHS["haproxy_secrets"])
    words = {"path": main.path, "structure": STRUCTURE, "shape": sha256(haproxy_structure(cfg, node))}
    prepare = step_script(
        "steps/haproxy-prepare.sh.j2",
        secret_path=secret.path,
        admin_socket=ADMIN_SOCKET,
        runtime=Directive(runtime_commands(cfg)),
        **words,
    )
    apply = step_script("steps/haproxy-apply.sh.j2", **words)
    # -dW: a warning is an error, as in halb's tests.
    validate = 'haproxy -c -dW -f "$stage/haproxy.cfg" -f "$stage/halb-secrets.cfg"'
    return _config_script(main, secret, posixpath.dirname(main.path), validate, apply, "haproxy -c -dW", prepare)


def certificate_payload(certificates: Mapping[str, str]) -> str:
    """The TLS step's stdin (secret), from `render.certificate_texts`: one line per certificate
    file, its name and its content in base64, so that any PEM travels intact and nothing in it is
    ever read as shell."""
    import base64

    return "".join(
        f"{posixpath.basename(path)} {base64.b64encode(text.encode()).decode()}\n"
        for path, text in certificates.items()
    )


def tls_script(files: list[NodeFile]) -> str:
    """Install the certificates (stdin: certificate_payload) before haproxy's step validates a
    config that names them (templates/steps/tls.sh.j2): each is checked before any is written; a
    changed one that haproxy serves is replaced through the runtime API, with no reload."""
    names = [posixpath.basename(f.path) for f in files if f.step == "tls"]
    return step_script("steps/tls.sh.j2", certs=PATHS["certs_dir"], names=names, admin_socket=ADMIN_SOCKET)


def certificates_removal() -> str:
    """The TLS step's delete (the node torn down, or no service ends TLS any more): halb's
    certificates and keys leave the node. haproxy's step has already loaded a config without them."""
    return f"rm -rf {shlex.quote(PATHS['certs_dir'])}\necho 'halb: certificates removed'\n"


def keepalived_script(files: list[NodeFile], vip: str) -> str:
    """Stage, validate, then apply, keeping exactly one VIP holder when both nodes' shared VRRP
    settings change (password, version, router id, advert interval): see the module docstring."""
    main = next(f for f in files if f.path == PATHS["keepalived_conf"])
    secret = next((f for f in files if f.path == PATHS["keepalived_auth"]), None)
    # The main file includes the live auth file; validate a copy that includes the staged one.
    # keepalived 2.2.7's -t kills itself after dropping to script_user unless it is PID 1 of a
    # PID namespace, hence unshare.
    validate = (
        f'sed "s#include {secret.path}#include $stage/halb-auth.conf#" "$stage/keepalived.conf" > "$stage/check.conf"'
        ' && unshare --pid --fork --mount-proc keepalived -t -f "$stage/check.conf"'
        if secret is not None
        else 'unshare --pid --fork --mount-proc keepalived -t -f "$stage/keepalived.conf"'
    )
    prepare = step_script(
        "steps/keepalived-prepare.sh.j2",
        shared_directives=Directive("|".join(SHARED_VRRP_DIRECTIVES)),
        live_conf=main.path,
        live_auth=PATHS["keepalived_auth"],
        vip=vip,
    )
    apply = step_script("steps/keepalived-apply.sh.j2", pending=PENDING, held=HELD)
    return _config_script(main, secret, posixpath.dirname(main.path), validate, apply, "keepalived -t", prepare)


# halb's optional services and the files each runs from (with `keepalived.handoff` and
# `monitoring.nodeExporter`): when the config turns one off, the services step stops it and removes them.
OPTIONAL_UNITS = {
    HANDOFF: ("handoff_unit", "handoff"),
    METRICS: ("metrics_unit", "metrics_writer"),
    NODE_EXPORTER: ("node_exporter_unit",),
}


def services_script(cfg: HalbConfig) -> str:
    """Enable and start what is not running; keepalived only when the node is not held out of VRRP.
    The distribution's own node exporter unit is stopped for halb's (the same port). An optional
    service the config turned off is stopped (halb-handoff's stop undoes what it set) and its files go."""
    units = halb_units(cfg)
    return step_script(
        "steps/services.sh.j2",
        bgp=cfg.mode == "bgp",
        units=units,
        package_exporters=list(PACKAGE_EXPORTERS) if NODE_EXPORTER in units else [],
        retired=[(u, [PATHS[k] for k in keys]) for u, keys in OPTIONAL_UNITS.items() if u not in units],
    )


def frr_script(cfg: HalbConfig, node: str, files: list[NodeFile]) -> str:
    """BGP mode: stage, check (vtysh --dryrun) and apply FRR's daemons file and frr.conf
    (templates/steps/frr.sh.j2); frr.conf comes on stdin when it holds a password. A node in
    maintenance then waits for its services' connections to end (bgp.drainTimeoutS at most)."""
    assert cfg.bgp is not None
    daemons = next(f for f in files if f.path == PATHS["frr_daemons"])
    conf = next(f for f in files if f.path == PATHS["frr_conf"])
    return step_script(
        "steps/frr.sh.j2",
        frr_dir=posixpath.dirname(conf.path),
        daemons=daemons.path,
        conf=conf.path,
        secret=conf.secret,
        write_daemons=Directive(_heredoc(daemons.content, '"$stage/daemons"')),
        write_conf=Directive("" if conf.secret else _heredoc(conf.content, '"$stage/frr.conf"')),
        reload=FRR_RELOAD,
        drain=cfg.node(node).maintenance,
        drain_timeout=cfg.bgp.drain_timeout_s,
        admin_socket=ADMIN_SOCKET,
        frontends=",".join(s.name for s in cfg.haproxy.services),
    )


def commit_script() -> str:
    """Runs on both nodes once both have the new files: the VIP holder takes pending VRRP settings
    (its peer, if it changes too, is out of VRRP by now)."""
    return step_script("steps/commit.sh.j2")


def rejoin_script() -> str:
    """Runs on both nodes after the commit: a node that left VRRP for the change comes back."""
    return step_script("steps/rejoin.sh.j2")


def owner_script(owner: str) -> str:
    """The teardown resource's create: mark the host as provisioned by this resource (`owner`: the
    resource's name and the node's generation, halb's own words)."""
    return step_script("steps/owner.sh.j2", owner=owner, owner_text=Directive(owner))


def teardown_paths() -> dict[str, list[str]]:
    """Everything halb leaves on a node, which the teardown removes (packages and users aside):
    files, directories removed whole, and drop-in directories removed once empty."""
    return {
        "files": [PATHS[k] for k in MANAGED] + [STRUCTURE],
        "dirs": [posixpath.dirname(PATHS["haproxy_watch"]), PATHS["state_dir"], OWNER_DIR],
        "dropins": [posixpath.dirname(PATHS["haproxy_dropin"]), posixpath.dirname(PATHS["keepalived_dropin"])],
    }


def teardown_script(node: str, owner: str, bgp: bool = False) -> str:
    """The teardown resource's delete: the VIP leaves first (BGP mode: FRR stops, the VIPs leave
    lo), then haproxy stops, then halb's files go. A host that another resource provisions since
    (a renamed node at the same address) is left alone."""
    return step_script(
        "steps/teardown.sh.j2",
        bgp=bgp,
        lo_label=LO_LABEL,
        owner=owner,
        node_text=Directive(node),  # a validated node name, inside the message's double quotes
        units=[WATCH, GUARD, HANDOFF, METRICS, NODE_EXPORTER],
        firewall=Directive(firewall([])),
        script_user=SCRIPT_USER,
        **teardown_paths(),
    )
