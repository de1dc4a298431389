# One customer managed key encrypts the buckets, queues, table, ECR images and endpoint volumes.
# A CMK (rather than SSE-S3/AES256) makes every decrypt auditable in CloudTrail, lets the key policy
# revoke access in one place, and is the only way S3 can deliver events to an encrypted SQS queue.
resource "aws_kms_key" "main" {
  description             = "${var.name}: data at rest (S3, SQS, DynamoDB, ECR, SageMaker)"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_key.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.main.key_id
}

# In a key policy "Resource": "*" means "this key"; it cannot name anything else.
data "aws_iam_policy_document" "kms_key" {
  #checkov:skip=CKV_AWS_109:Key policy: "*" is the key itself and the account root must administer it (AWS default key policy).
  #checkov:skip=CKV_AWS_111:Key policy: "*" is the key itself; write use is delegated to IAM policies scoped to the key ARN.
  #checkov:skip=CKV_AWS_356:Key policy: "*" is the only valid resource in a key policy and means this key.
  statement {
    sid       = "AccountAdministersKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # S3 encrypts event messages into the queue with this key (SQS SSE-KMS).
  statement {
    sid       = "S3PublishesToEncryptedQueue"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
