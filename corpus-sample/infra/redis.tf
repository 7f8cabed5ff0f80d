# ElastiCache Redis for checkout-api idempotency keys and gateway sessions.
# Runbook: runbooks/redis-memory-pressure.md
#
# Changing node_type triggers a rolling replacement with one failover
# (about 30 seconds of ECONNREFUSED for clients). Apply outside peak hours.

variable "redis_node_type" {
  description = "Instance type for acme-cache nodes. r6g.xlarge gives ~26 GiB usable."
  type        = string
  default     = "cache.r6g.xlarge"
}

variable "redis_replicas" {
  description = "Number of read replicas in addition to the primary."
  type        = number
  default     = 2
}

variable "vpc_id" {
  description = "VPC of the eu1 data subnets."
  type        = string
}

data "aws_secretsmanager_secret_version" "redis_auth" {
  secret_id = "data/acme-cache/auth-token"
}

resource "aws_elasticache_parameter_group" "acme_cache" {
  name   = "acme-cache-redis7"
  family = "redis7"

  # Only keys with a TTL may be evicted: idem:* keys must never disappear early.
  parameter {
    name  = "maxmemory-policy"
    value = "volatile-lru"
  }

  parameter {
    name  = "activedefrag"
    value = "yes"
  }

  parameter {
    name  = "timeout"
    value = "300"
  }
}

resource "aws_elasticache_replication_group" "acme_cache" {
  replication_group_id = "acme-cache"
  description          = "checkout-api idempotency keys, payments-gateway sessions and BIN cache"

  engine               = "redis"
  engine_version       = "7.1"
  node_type            = var.redis_node_type
  num_cache_clusters   = 1 + var.redis_replicas
  parameter_group_name = aws_elasticache_parameter_group.acme_cache.name
  port                 = 6379

  automatic_failover_enabled = true
  multi_az_enabled           = true
  subnet_group_name          = "data-private-eu1"
  security_group_ids         = [aws_security_group.acme_cache.id]

  at_rest_encryption_enabled = true
  transit_encryption_enabled = true
  auth_token                 = data.aws_secretsmanager_secret_version.redis_auth.secret_string

  snapshot_retention_limit = 3
  snapshot_window          = "02:30-03:30"
  maintenance_window       = "tue:04:00-tue:05:00"

  tags = {
    team    = "data-platform"
    service = "redis"
    runbook = "runbooks/redis-memory-pressure.md"
  }
}

resource "aws_security_group" "acme_cache" {
  name        = "acme-cache"
  description = "Redis access from the payments node pool only"
  vpc_id      = var.vpc_id

  ingress {
    description = "Redis TLS from payments nodes"
    from_port   = 6379
    to_port     = 6379
    protocol    = "tcp"
    cidr_blocks = ["10.30.0.0/16"]
  }
}

resource "aws_cloudwatch_metric_alarm" "redis_memory_high" {
  alarm_name          = "RedisMemoryHigh"
  namespace           = "AWS/ElastiCache"
  metric_name         = "DatabaseMemoryUsagePercentage"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 85
  comparison_operator = "GreaterThanThreshold"
  alarm_description   = "acme-cache above 85% memory; see runbooks/redis-memory-pressure.md"

  dimensions = {
    ReplicationGroupId = aws_elasticache_replication_group.acme_cache.id
  }
}
