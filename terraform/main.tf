data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  arn_suffix = "${var.region}:${local.account_id}"

  # Fixed key layout of highlights/aws/plan.py (plan_run()); the service roles are scoped to it.
  frames_prefix     = "frames/"
  proxies_prefix    = "proxies/"
  normalized_prefix = "normalized/"
  features_prefix   = "features/"
  scores_prefix     = "scores/"
  highlights_prefix = "highlights/"
  models_prefix     = "models/"

  bucket_names = {
    input      = "${var.name}-${local.account_id}-${var.region}-input"
    work       = "${var.name}-${local.account_id}-${var.region}-work"
    highlights = "${var.name}-${local.account_id}-${var.region}-highlights"
    logs       = "${var.name}-${local.account_id}-${var.region}-access-logs"
  }

  endpoint_name        = "${var.name}-endpoint"
  variant_name         = "primary"
  processing_image_uri = var.processing_image_uri != "" ? var.processing_image_uri : var.model_image_uri
  autoscaling_enabled  = var.deploy_endpoint && var.enable_autoscaling
}
