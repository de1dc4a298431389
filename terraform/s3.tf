# Three private data buckets: input (uploaded matches), work (frames, features and scores, which
# expire) and highlights (clips, reels, reports, model archives). A fourth bucket takes their server
# access logs.
module "input_bucket" {
  source = "./modules/private_bucket"

  bucket                  = local.bucket_names.input
  kms_key_arn             = aws_kms_key.main.arn
  log_bucket              = aws_s3_bucket.logs.id
  log_prefix              = "input/"
  noncurrent_version_days = var.noncurrent_version_retention_days
}

module "work_bucket" {
  source = "./modules/private_bucket"

  bucket                  = local.bucket_names.work
  kms_key_arn             = aws_kms_key.main.arn
  log_bucket              = aws_s3_bucket.logs.id
  log_prefix              = "work/"
  expiring_prefixes       = [local.frames_prefix, local.proxies_prefix, local.normalized_prefix, local.features_prefix, local.scores_prefix]
  expiry_days             = var.work_retention_days
  noncurrent_version_days = var.noncurrent_version_retention_days
}

module "highlights_bucket" {
  source = "./modules/private_bucket"

  bucket                  = local.bucket_names.highlights
  kms_key_arn             = aws_kms_key.main.arn
  log_bucket              = aws_s3_bucket.logs.id
  log_prefix              = "highlights/"
  noncurrent_version_days = var.noncurrent_version_retention_days
}

resource "aws_s3_bucket_notification" "uploads" {
  bucket = module.input_bucket.id

  queue {
    id            = "match-uploaded"
    queue_arn     = aws_sqs_queue.uploads.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.input_prefix
  }

  # S3 sends a test message when the configuration is saved, so the queue must already accept it.
  depends_on = [aws_sqs_queue_policy.uploads]
}

# --- Server access logs ---------------------------------------------------------------------

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log bucket; logging it into itself would log every log delivery.
  #checkov:skip=CKV_AWS_144:Access logs stay in the region they describe; replicating them adds cost without protecting user data.
  #checkov:skip=CKV_AWS_145:S3 server access logging only delivers to buckets encrypted with SSE-S3 (AES256); SSE-KMS targets are not supported.
  #checkov:skip=CKV2_AWS_62:Nothing consumes log-delivery events.
  bucket = local.bucket_names.logs
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

data "aws_iam_policy_document" "logs_bucket" {
  statement {
    sid       = "S3ServerAccessLogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [module.input_bucket.arn, module.work_bucket.arn, module.highlights_bucket.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}
