locals {
  bucket_arns = {
    input      = module.input_bucket.arn
    work       = module.work_bucket.arn
    highlights = module.highlights_bucket.arn
  }
  input_objects      = "${local.bucket_arns.input}/${var.input_prefix}*"
  processing_job_arn = "arn:${local.partition}:sagemaker:${local.arn_suffix}:processing-job/${var.processing_job_prefix}*"
  endpoint_arn       = "arn:${local.partition}:sagemaker:${local.arn_suffix}:endpoint/${local.endpoint_name}"
}

# --- MediaConvert service role: read the input prefix, write frames and clips -------------------

data "aws_iam_policy_document" "mediaconvert_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["mediaconvert.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "mediaconvert" {
  name               = "${var.name}-mediaconvert"
  description        = "Assumed by MediaConvert jobs: reads uploaded matches, writes frames and clips."
  assume_role_policy = data.aws_iam_policy_document.mediaconvert_assume.json
}

data "aws_iam_policy_document" "mediaconvert" {
  statement {
    sid       = "ReadUploadedMatches"
    actions   = ["s3:GetObject"]
    resources = [local.input_objects, "${local.bucket_arns.work}/${local.normalized_prefix}*"]
  }

  statement {
    sid     = "WriteFramesAndClips"
    actions = ["s3:PutObject"]
    resources = [
      "${local.bucket_arns.work}/${local.frames_prefix}*",
      "${local.bucket_arns.work}/${local.proxies_prefix}*",
      "${local.bucket_arns.work}/${local.normalized_prefix}*",
      "${local.bucket_arns.highlights}/${local.highlights_prefix}*/clips/*",
      "${local.bucket_arns.highlights}/${local.highlights_prefix}*/reel*",
    ]
  }

  statement {
    sid       = "UseBucketKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "mediaconvert" {
  name   = "s3-input-frames-clips"
  role   = aws_iam_role.mediaconvert.id
  policy = data.aws_iam_policy_document.mediaconvert.json
}

# --- SageMaker execution role: processing jobs and the endpoint ---------------------------------

data "aws_iam_policy_document" "sagemaker_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "sagemaker" {
  name               = "${var.name}-sagemaker"
  description        = "Execution role of the SageMaker processing jobs and the model endpoint."
  assume_role_policy = data.aws_iam_policy_document.sagemaker_assume.json
}

data "aws_iam_policy_document" "sagemaker" {
  statement {
    sid       = "ListPipelineBuckets"
    actions   = ["s3:ListBucket"]
    resources = values(local.bucket_arns)
  }

  statement {
    sid       = "ReadUploadedMatches"
    actions   = ["s3:GetObject"]
    resources = [local.input_objects]
  }

  statement {
    sid       = "ReadWriteWorkBucket"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.bucket_arns.work}/*"]
  }

  statement {
    sid       = "ReadModelArchives"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arns.highlights}/${local.models_prefix}*"]
  }

  statement {
    sid       = "UseKeyThroughDataServices"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com", "dynamodb.${var.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "PullModelImages"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.model.arn]
  }

  # AWS forces "*": ecr:GetAuthorizationToken has no resource-level permissions.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "WriteSageMakerLogs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [
      "arn:${local.partition}:logs:${local.arn_suffix}:log-group:/aws/sagemaker/*",
      "arn:${local.partition}:logs:${local.arn_suffix}:log-group:/aws/sagemaker/*:log-stream:*",
    ]
  }

  statement {
    sid = "WindowResults"
    actions = [
      "dynamodb:BatchWriteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
    ]
    resources = [aws_dynamodb_table.results.arn]
  }

  # AWS forces "*": cloudwatch:PutMetricData has no resource-level permissions; the namespace
  # condition keeps it to SageMaker's own job metrics.
  statement {
    sid       = "PublishJobMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/*"]
    }
  }

  # The scores job may call the endpoint instead of loading the model itself.
  statement {
    sid       = "InvokeModelEndpoint"
    actions   = ["sagemaker:InvokeEndpoint"]
    resources = [local.endpoint_arn]
  }
}

resource "aws_iam_role_policy" "sagemaker" {
  name   = "pipeline-data-ecr-logs"
  role   = aws_iam_role.sagemaker.id
  policy = data.aws_iam_policy_document.sagemaker.json

  lifecycle {
    precondition {
      condition     = var.model_data_uri == "" || startswith(var.model_data_uri, "s3://${local.bucket_names.highlights}/${local.models_prefix}")
      error_message = "model_data_uri must be under s3://<highlights bucket>/${local.models_prefix}: the SageMaker role may read model archives only there."
    }
  }
}

# --- Airflow workers ----------------------------------------------------------------------------

data "aws_iam_policy_document" "airflow" {
  # AWS forces "*": mediaconvert:DescribeEndpoints and mediaconvert:Probe (which reads an S3 URL,
  # not a MediaConvert resource) have no resource-level permissions.
  statement {
    sid       = "DiscoverEndpointAndProbeInputs"
    actions   = ["mediaconvert:DescribeEndpoints", "mediaconvert:Probe"]
    resources = ["*"]
  }

  # The operator lists a queue's recent jobs to find the one an earlier try submitted.
  statement {
    sid       = "FindEarlierMediaConvertJobs"
    actions   = ["mediaconvert:ListJobs"]
    resources = ["arn:${local.partition}:mediaconvert:${local.arn_suffix}:queues/*"]
  }

  statement {
    sid     = "CreateMediaConvertJobs"
    actions = ["mediaconvert:CreateJob"]
    resources = [
      "arn:${local.partition}:mediaconvert:${local.arn_suffix}:queues/Default",
      "arn:${local.partition}:mediaconvert:${local.arn_suffix}:presets/*",
      "arn:${local.partition}:mediaconvert:${local.arn_suffix}:jobTemplates/*",
    ]
  }

  statement {
    sid       = "WatchMediaConvertJobs"
    actions   = ["mediaconvert:GetJob", "mediaconvert:CancelJob"]
    resources = ["arn:${local.partition}:mediaconvert:${local.arn_suffix}:jobs/*"]
  }

  statement {
    sid = "RunProcessingJobs"
    actions = [
      "sagemaker:AddTags",
      "sagemaker:CreateProcessingJob",
      "sagemaker:DescribeProcessingJob",
      "sagemaker:StopProcessingJob",
    ]
    resources = [local.processing_job_arn]
  }

  # AWS forces "*": sagemaker:ListProcessingJobs (used by the Airflow operator to avoid name
  # clashes) has no resource-level permissions.
  statement {
    sid       = "ListProcessingJobs"
    actions   = ["sagemaker:ListProcessingJobs"]
    resources = ["*"]
  }

  statement {
    sid       = "InvokeModelEndpoint"
    actions   = ["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"]
    resources = [local.endpoint_arn]
  }

  statement {
    sid       = "PassMediaConvertRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.mediaconvert.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["mediaconvert.amazonaws.com"]
    }
  }

  statement {
    sid       = "PassSageMakerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.sagemaker.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }

  statement {
    sid       = "SendHighlightEmail"
    actions   = ["ses:SendEmail", "ses:SendRawEmail"]
    resources = local.ses_identity_arns

    condition {
      test     = "StringEquals"
      variable = "ses:FromAddress"
      values   = [var.sender_email]
    }
  }

  statement {
    sid = "ConsumeUploadQueue"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
    ]
    resources = [aws_sqs_queue.uploads.arn]
  }

  statement {
    sid = "WindowResults"
    actions = [
      "dynamodb:BatchWriteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
    ]
    resources = [aws_dynamodb_table.results.arn]
  }

  statement {
    sid       = "ListPipelineBuckets"
    actions   = ["s3:ListBucket"]
    resources = values(local.bucket_arns)
  }

  # Presigned links are signed with these credentials, so GetObject here is what recipients use.
  statement {
    sid       = "ReadWritePipelineObjects"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [for arn in values(local.bucket_arns) : "${arn}/*"]
  }

  # The DAG deletes a match's frames, proxy and scores once the steps that read them succeeded.
  statement {
    sid     = "CleanUpScratchObjects"
    actions = ["s3:DeleteObject"]
    resources = [
      "${local.bucket_arns.work}/${local.frames_prefix}*",
      "${local.bucket_arns.work}/${local.proxies_prefix}*",
      "${local.bucket_arns.work}/${local.features_prefix}*",
      "${local.bucket_arns.work}/${local.scores_prefix}*",
    ]
  }

  statement {
    sid       = "UseKeyThroughDataServices"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "s3.${var.region}.amazonaws.com",
        "sqs.${var.region}.amazonaws.com",
        "dynamodb.${var.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_policy" "airflow" {
  name        = "${var.name}-airflow-workers"
  description = "Lets the Airflow workers run the highlights DAG: MediaConvert and SageMaker jobs, the upload queue, the results table, SES and the pipeline buckets."
  policy      = data.aws_iam_policy_document.airflow.json
}

resource "aws_iam_role_policy_attachment" "airflow" {
  count = var.airflow_role_name == "" ? 0 : 1

  role       = var.airflow_role_name
  policy_arn = aws_iam_policy.airflow.arn
}
