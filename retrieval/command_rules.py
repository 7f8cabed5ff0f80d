"""Per-program rules: which subcommands of kubectl, helm, terraform, git, cloud CLIs... read or destroy.

Each rule sees one command's words, wrappers removed (`devrag.retrieval.commands`), and returns
its class, or None for a program it does not know (the caller then says `mutating`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

Kind = Literal["read-only", "mutating", "destructive"]

SQL_VERBS = {
    "SELECT", "SHOW", "EXPLAIN", "DESCRIBE", "WITH", "INSERT", "UPDATE", "DELETE", "DROP", "TRUNCATE",
    "ALTER", "CREATE", "GRANT", "REVOKE", "VACUUM", "REINDEX", "ANALYZE",
}  # fmt: skip
_SQL_READS = {"SELECT", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "WITH", "VALUES", "TABLE"}
_RANK: dict[Kind, int] = {"read-only": 0, "mutating": 1, "destructive": 2}
_READ_PROGRAMS = {
    "ls", "cat", "less", "more", "head", "tail", "grep", "egrep", "zgrep", "rg", "du", "df", "free",
    "top", "htop", "ps", "pgrep", "uptime", "whoami", "id", "hostname", "uname", "date", "echo",
    "printf", "which", "stat", "file", "wc", "sort", "uniq", "cut", "awk", "jq", "yq", "dig",
    "nslookup", "host", "ping", "traceroute", "mtr", "ss", "netstat", "lsof", "iostat", "vmstat", "sar",
    "dmesg", "tcpdump", "strace", "getent", "lsblk", "blkid", "nproc", "pwd", "diff", "tree",
    "nc", "telnet", "base64", "sha256sum", "md5sum", "column", "tr", "openssl",
}  # fmt: skip
_DESTROY_PROGRAMS = {
    "rm", "shred", "wipefs", "mkfs", "fdisk", "sgdisk", "parted", "kill", "pkill", "killall",
    "reboot", "shutdown", "poweroff", "halt", "truncate",
}  # fmt: skip
_MUTATE_PROGRAMS = {"mv", "cp", "chmod", "chown", "ln", "mkdir", "touch", "tee", "rmdir", "crontab", "wget"}


def worst(kinds: list[Kind]) -> Kind:
    """The most dangerous class of several (a pipeline, a chain, a script): read-only for none."""
    return max(kinds, key=_RANK.__getitem__, default="read-only")


def classify_sql(text: str) -> Kind:
    """The worst statement of some SQL: DROP/TRUNCATE/un-WHEREd DELETE or UPDATE destroy."""
    kinds: list[Kind] = []
    for statement in filter(str.strip, text.split(";")):
        words = statement.upper().split()
        verb = words[0] if words else ""
        if verb in _SQL_READS or verb.startswith("\\"):
            kinds.append("read-only")
        elif verb in {"DROP", "TRUNCATE"} or (verb in {"DELETE", "UPDATE"} and "WHERE" not in words):
            kinds.append("destructive")
        elif verb == "ALTER" and "DROP" in words:
            kinds.append("destructive")
        else:
            kinds.append("mutating")
    return worst(kinds)


def _verb(words: list[str], value_flags: frozenset[str] = frozenset()) -> list[str]:
    """The words that are not flags (nor the values of flags in `value_flags`)."""
    out, skip = [], False
    for word in words[1:]:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in value_flags
        else:
            out.append(word)
    return out


_KUBE_VALUE_FLAGS = frozenset(
    {"-n", "--namespace", "--context", "--kubeconfig", "-l", "-o", "-c", "--cluster"}
)
_KUBE_READ = {
    "get", "describe", "logs", "top", "explain", "api-resources", "api-versions", "version", "cluster-info",
    "diff", "events", "wait", "auth", "port-forward",
}  # fmt: skip


def _kubectl(words: list[str]) -> Kind:
    args = _verb(words, _KUBE_VALUE_FLAGS)
    sub, rest = (args[0], args[1:]) if args else ("", [])
    if sub in {"delete", "drain"} or (sub == "replace" and "--force" in words) or "--prune" in words:
        return "destructive"
    if sub == "scale" and any(w in {"--replicas=0", "--replicas 0"} for w in words):
        return "destructive"
    if sub in _KUBE_READ or (sub == "rollout" and rest[:1] in (["status"], ["history"])):
        return "read-only"
    if sub == "config" and rest[:1] in (["view"], ["get-contexts"], ["current-context"]):
        return "read-only"
    return "mutating"


def _helm(words: list[str]) -> Kind:
    args = _verb(words, frozenset({"-n", "--namespace", "--kube-context"}))
    sub = args[0] if args else ""
    if sub in {"uninstall", "delete", "del", "un"}:
        return "destructive"
    reads = {
        "status",
        "list",
        "ls",
        "history",
        "hist",
        "get",
        "show",
        "template",
        "lint",
        "search",
        "version",
    }
    if sub in reads or (sub == "repo" and args[1:2] == ["list"]) or sub == "env":
        return "read-only"
    return "mutating"


def _terraform(words: list[str]) -> Kind:
    args = _verb(words)
    sub, rest = (args[0], args[1:]) if args else ("", [])
    replaces = any(w.startswith("-replace") for w in words)
    if sub == "destroy" or (sub == "apply" and ("-destroy" in words or replaces)):
        return "destructive"
    if (sub == "state" and rest[:1] == ["rm"]) or (sub == "workspace" and rest[:1] == ["delete"]):
        return "destructive"
    if sub in {"plan", "show", "output", "validate", "graph", "providers", "version"}:
        return "read-only"
    if (sub == "state" and rest[:1] in (["list"], ["show"])) or (sub == "fmt" and "-check" in words):
        return "read-only"
    return "mutating"


_GIT_READ = {
    "log", "show", "status", "diff", "blame", "grep", "rev-parse", "describe", "ls-files", "ls-tree",
    "cat-file", "reflog", "shortlog", "rev-list", "whatchanged",
}  # fmt: skip


def _git(words: list[str]) -> Kind:
    args = _verb(words, frozenset({"-C", "-c"}))
    sub = args[0] if args else ""
    force = {"--force", "-f", "--force-with-lease", "--delete", "-d", "--mirror"}
    if sub == "push" and (force & set(words) or any(a.startswith((":", "+")) for a in args[1:])):
        return "destructive"
    if (sub == "reset" and "--hard" in words) or (sub == "clean" and any(w.startswith("-") for w in words)):
        return "destructive"
    if (sub == "branch" and {"-D", "--delete"} & set(words)) or (
        sub == "stash" and args[1:2] in (["drop"], ["clear"])
    ):
        return "destructive"
    if sub == "filter-branch" or (sub == "checkout" and "--" in words and "." in words):
        return "destructive"
    if (
        sub in _GIT_READ
        or (sub == "remote" and len(args) == 1)
        or (sub in {"branch", "tag"} and len(args) == 1)
    ):
        return "read-only"
    return "mutating"


def _cloud(words: list[str]) -> Kind:
    """aws, gcloud, az: the operation's verb decides (`terminate-instances`, `delete`, `describe-*`)."""
    args = _verb(words, frozenset({"--region", "--zone", "--project", "--profile", "-g", "--resource-group"}))
    verbs = [a.split("-", 1)[0] for a in args]
    if {"delete", "terminate", "remove", "purge", "deregister", "rb", "rm", "destroy"} & set(verbs):
        return "destructive"
    if words[0] == "aws" and args[:2] == ["s3", "sync"] and "--delete" in words:
        return "destructive"
    if {"describe", "list", "get", "show", "ls", "read", "wait"} & set(verbs[1:]):
        return "read-only"
    return "mutating"


def _docker(words: list[str]) -> Kind:
    args = _verb(words)
    sub = args[0] if args else ""
    if sub in {"rm", "rmi", "kill"} or "prune" in args or (sub == "volume" and args[1:2] == ["rm"]):
        return "destructive"
    reads = {"ps", "images", "logs", "inspect", "stats", "top", "version", "info", "port", "diff", "history"}
    return "read-only" if sub in reads else "mutating"


def _systemctl(words: list[str]) -> Kind:
    args = _verb(words)
    sub = args[0] if args else "list-units"
    reads = {"status", "show", "is-active", "is-enabled", "is-failed", "list-units", "list-timers", "cat"}
    if sub in {"poweroff", "reboot", "halt", "kill"}:
        return "destructive"
    return "read-only" if sub in reads else "mutating"


def _etcdctl(words: list[str]) -> Kind:
    args = _verb(words, frozenset({"--endpoints", "--cacert", "--cert", "--key"}))
    sub = args[0] if args else ""
    if sub in {"del", "compact"} or (sub == "member" and args[1:2] == ["remove"]):
        return "destructive"
    reads = {"get", "endpoint", "version", "check", "watch"}
    if sub in reads or (sub in {"member", "alarm"} and args[1:2] == ["list"]):
        return "read-only"
    return "mutating"


def _redis(words: list[str]) -> Kind:
    args = [a.upper() for a in _verb(words, frozenset({"-h", "-p", "-a", "-n", "--user", "--pass"}))]
    sub = args[0] if args else ""
    if sub in {"FLUSHALL", "FLUSHDB", "DEL", "UNLINK", "SHUTDOWN"}:
        return "destructive"
    reads = {"INFO", "GET", "KEYS", "SCAN", "MEMORY", "SLOWLOG", "DBSIZE", "TTL", "PING", "TYPE", "MONITOR"}
    if sub in reads or (sub in {"CLIENT", "CONFIG"} and args[1:2] in (["LIST"], ["GET"])):
        return "read-only"
    return "mutating"


def _sql_client(words: list[str]) -> Kind:
    """psql, mysql: the SQL given with -c/-e decides; an interactive session may do anything."""
    for flag, value in zip(words, words[1:], strict=False):
        if flag in {"-c", "-e", "--command", "--execute"}:
            return classify_sql(value.strip("'\""))
    return "mutating"


def _find(words: list[str]) -> Kind:
    if "-delete" in words or (
        "-exec" in words and words[words.index("-exec") + 1 : words.index("-exec") + 2] == ["rm"]
    ):
        return "destructive"
    return "mutating" if "-exec" in words else "read-only"


def _curl(words: list[str]) -> Kind:
    method = next((b for a, b in zip(words, words[1:], strict=False) if a in {"-X", "--request"}), "")
    if method.upper() == "DELETE":
        return "destructive"
    writes = {"-d", "--data", "--data-raw", "--data-binary", "-F", "--form", "-T", "--upload-file", "-o"}
    return "mutating" if method.upper() not in {"", "GET", "HEAD"} or writes & set(words) else "read-only"


def _dd(words: list[str]) -> Kind:
    return "destructive" if any(w.startswith("of=") for w in words) else "read-only"


def _journalctl(words: list[str]) -> Kind:
    return (
        "mutating" if any(w.startswith(("--vacuum", "--rotate", "--flush")) for w in words) else "read-only"
    )


def _sed(words: list[str]) -> Kind:
    return "mutating" if any(w.startswith("-i") or w.startswith("--in-place") for w in words) else "read-only"


_RULES: dict[str, Callable[[list[str]], Kind]] = {
    "kubectl": _kubectl, "oc": _kubectl, "k": _kubectl, "helm": _helm, "terraform": _terraform,
    "tofu": _terraform, "git": _git, "aws": _cloud, "gcloud": _cloud, "az": _cloud, "docker": _docker,
    "podman": _docker, "systemctl": _systemctl, "etcdctl": _etcdctl, "redis-cli": _redis,
    "psql": _sql_client, "mysql": _sql_client, "find": _find, "curl": _curl, "dd": _dd,
    "journalctl": _journalctl, "sed": _sed,
}  # fmt: skip
KNOWN_PROGRAMS = set(_RULES) | _READ_PROGRAMS | _DESTROY_PROGRAMS | _MUTATE_PROGRAMS


def classify_words(words: list[str]) -> Kind | None:
    """The class of one command (its words, wrappers removed); None for a program not known here."""
    if not words:
        return None
    program = words[0]
    if program in _RULES:
        return _RULES[program](words)
    if program in _DESTROY_PROGRAMS or program.startswith("mkfs."):
        return "destructive"
    if program in _READ_PROGRAMS:
        return "read-only"
    return "mutating" if program in _MUTATE_PROGRAMS else None
