output "airflow_variables" {
  description = "JSON value of the Airflow Variable \"highlights_aws\" that the DAG reads (see README.md)."
  value = {
    region                = var.region
    input_bucket          = module.input_bucket.id
    input_prefix          = var.input_prefix
    work_bucket           = module.work_bucket.id
    highlights_bucket     = module.highlights_bucket.id
    results_table         = aws_dynamodb_table.results.name
    upload_queue_url      = aws_sqs_queue.uploads.url
    mediaconvert_role_arn = aws_iam_role.mediaconvert.arn
    mediaconvert_endpoint = var.mediaconvert_endpoint
    sagemaker_role_arn    = aws_iam_role.sagemaker.arn
    processing_image_uri  = local.processing_image_uri
    endpoint_name         = var.deploy_endpoint ? aws_sagemaker_endpoint.highlights[0].name : ""
    model_data_uri        = var.model_data_uri
    sender_email          = aws_ses_email_identity.sender.email
    recipient_emails      = var.recipient_emails
    link_expiry_seconds   = var.link_expiry_seconds
  }
}

output "bucket_layout" {
  description = "Fixed key prefixes (as in highlights/aws/plan.py) the MediaConvert and SageMaker roles are scoped to."
  value = {
    frames     = "s3://${module.work_bucket.id}/${local.frames_prefix}"
    proxies    = "s3://${module.work_bucket.id}/${local.proxies_prefix}"
    normalized = "s3://${module.work_bucket.id}/${local.normalized_prefix}"
    features   = "s3://${module.work_bucket.id}/${local.features_prefix}"
    scores     = "s3://${module.work_bucket.id}/${local.scores_prefix}"
    highlights = "s3://${module.highlights_bucket.id}/${local.highlights_prefix}"
    models     = "s3://${module.highlights_bucket.id}/${local.models_prefix}"
  }
}

output "upload_dead_letter_queue_url" {
  description = "Dead-letter queue for upload messages the DAG failed to process."
  value       = aws_sqs_queue.uploads_dlq.url
}

output "ecr_repository_url" {
  description = "Push the model and processing images here (tags are immutable)."
  value       = aws_ecr_repository.model.repository_url
}

output "airflow_worker_policy_arn" {
  description = "IAM policy to attach to the role the Airflow workers run as."
  value       = aws_iam_policy.airflow.arn
}

output "kms_key_arn" {
  description = "Customer managed key encrypting the buckets, queues, table, images and endpoint volumes."
  value       = aws_kms_key.main.arn
}

output "processing_job_prefix" {
  description = "SageMaker Processing job names must start with this; the worker policy is scoped to it."
  value       = var.processing_job_prefix
}
