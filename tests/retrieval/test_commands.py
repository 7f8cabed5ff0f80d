"""Commands quoted in runbook sections are classed read-only, mutating or destructive."""

from __future__ import annotations

import pytest

from devrag.retrieval.commands import Command, classify, section_commands

READ_ONLY = [
    "kubectl get pods -n payments",
    "kubectl -n payments describe pod checkout-api-7d9f",
    "kubectl logs --previous checkout-api-7d9f",
    "kubectl rollout status deploy/checkout-api",
    "$ kubectl get pods | grep CrashLoop",
    "terraform plan -out=tfplan",
    "terraform plan -destroy",
    "helm status checkout-api",
    "helm history checkout-api -n prod",
    "git log --oneline -5",
    "git diff HEAD~1",
    "SELECT count(*) FROM ledger_postings WHERE created_at > now() - interval '1 hour'",
    "aws ec2 describe-instances --region eu-west-1",
    "gcloud compute instances list --project p",
    "az vm list -g prod",
    "etcdctl endpoint status --cluster -w table",
    "docker ps -a",
    "systemctl status kubelet",
    "journalctl -u kubelet --since '10 min ago'",
    "sudo -u postgres psql -c 'SELECT * FROM pg_stat_activity'",
    "redis-cli INFO memory",
    "df -h /var/lib/etcd",
    "curl -s http://localhost:9090/-/healthy",
    "find /var/log -name '*.gz' -mtime +7",
]
MUTATING = [
    "kubectl rollout restart deploy/checkout-api",
    "kubectl scale deploy/checkout-api --replicas=6",
    "kubectl cordon node-1",
    "helm upgrade checkout-api ./chart -f values.yaml",
    "helm rollback checkout-api 41",
    "terraform apply tfplan",
    "systemctl restart kubelet",
    "UPDATE accounts SET frozen = false WHERE id = 42",
    "DELETE FROM sessions WHERE expires_at < now()",
    "git push origin main",
    "./scripts/rotate-certs.sh --env prod",  # unknown: never read-only
    "FOO=1 ledgerctl replay --from 2026-01-01",
    "echo 1 > /proc/sys/vm/drop_caches",
    "journalctl --vacuum-size=500M",
]
DESTRUCTIVE = [
    "kubectl delete pod checkout-api-7d9f -n payments",
    "$ kubectl drain node-1 --ignore-daemonsets --delete-emptydir-data",
    "kubectl get pods -o name | xargs kubectl delete",
    "kubectl scale deploy/ledger --replicas=0",
    "DROP TABLE ledger_postings_old",
    "TRUNCATE audit_log",
    "DELETE FROM sessions",
    "UPDATE accounts SET frozen = true",
    "terraform destroy -target=aws_instance.bastion",
    "terraform apply -destroy -auto-approve",
    "helm uninstall checkout-api -n prod",
    "sudo rm -rf /var/lib/etcd/member",
    "aws ec2 terminate-instances --instance-ids i-0abc",
    "gcloud compute instances delete db-1 --zone europe-west1-b",
    "az group delete -n prod-rg --yes",
    "git push --force origin main",
    "git reset --hard origin/main",
    "ETCDCTL_API=3 etcdctl del /registry/pods/payments/stuck",
    "dd if=/dev/zero of=/dev/sdb bs=1M",
    "mkfs.ext4 /dev/nvme1n1",
    "sudo kill -9 4242",
    "docker system prune -af",
    "redis-cli FLUSHALL",
    'psql -h db -c "DROP DATABASE ledger"',
    "systemctl start kubelet && rm -f /etc/kubernetes/manifests/old.yaml",
    "find /var/log -name '*.gz' -delete",
]


@pytest.mark.parametrize("line", READ_ONLY)
def test_commands_that_only_read_are_read_only(line):
    assert classify(line) == "read-only"


@pytest.mark.parametrize("line", MUTATING)
def test_commands_that_change_state_or_are_unknown_are_mutating(line):
    assert classify(line) == "mutating"


@pytest.mark.parametrize("line", DESTRUCTIVE)
def test_commands_that_destroy_are_destructive(line):
    assert classify(line) == "destructive"


def test_a_section_lists_its_fenced_and_inline_commands_and_skips_names_config_and_output():
    text = """## Mitigation

The pod is in `CrashLoopBackOff`; check it with `kubectl describe pod checkout-api-7d9f`.

```console
$ kubectl get pods
NAME                 READY   STATUS
checkout-api-7d9f    0/1     CrashLoopBackOff
$ kubectl delete pod checkout-api-7d9f
```

```yaml
command: ["rm", "-rf", "/"]
```

```sql
SELECT 1; DROP TABLE tmp_import;
```

```bash
# restart it
sudo systemctl restart checkout-api \\
  --no-block
```
"""
    assert section_commands(text) == [
        Command(text="kubectl describe pod checkout-api-7d9f", kind="read-only"),
        Command(text="$ kubectl get pods", kind="read-only"),
        Command(text="$ kubectl delete pod checkout-api-7d9f", kind="destructive"),
        Command(text="SELECT 1", kind="read-only"),
        Command(text="DROP TABLE tmp_import", kind="destructive"),
        Command(text="sudo systemctl restart checkout-api    --no-block", kind="mutating"),
    ]


def test_prose_and_identifiers_in_inline_code_are_not_commands():
    prose = "Watch `etcd_disk_wal_fsync_duration_seconds` and `/var/log` for `HTTP 503`."
    assert section_commands(prose) == []
