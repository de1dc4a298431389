# Model, endpoint configuration and endpoint are created only once an image and archive exist
# (deploy_endpoint); endpoint configurations are immutable, so a change creates a new one first.
resource "aws_sagemaker_model" "highlights" {
  count = var.deploy_endpoint ? 1 : 0

  execution_role_arn       = aws_iam_role.sagemaker.arn
  enable_network_isolation = true

  primary_container {
    image          = var.model_image_uri
    model_data_url = var.model_data_uri
  }

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = var.model_image_uri != "" && var.model_data_uri != ""
      error_message = "deploy_endpoint = true needs model_image_uri and model_data_uri; apply with deploy_endpoint = false first, then push the image and upload model.tar.gz."
    }
  }

  depends_on = [aws_iam_role_policy.sagemaker]
}

resource "aws_sagemaker_endpoint_configuration" "highlights" {
  count = var.deploy_endpoint ? 1 : 0

  name_prefix = "${var.name}-"
  kms_key_arn = aws_kms_key.main.arn

  production_variants {
    variant_name           = local.variant_name
    model_name             = aws_sagemaker_model.highlights[0].name
    initial_instance_count = var.endpoint_instance_count
    instance_type          = var.endpoint_instance_type
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_sagemaker_endpoint" "highlights" {
  count = var.deploy_endpoint ? 1 : 0

  name                 = local.endpoint_name
  endpoint_config_name = aws_sagemaker_endpoint_configuration.highlights[0].name
}

resource "aws_appautoscaling_target" "endpoint" {
  count = local.autoscaling_enabled ? 1 : 0

  service_namespace  = "sagemaker"
  scalable_dimension = "sagemaker:variant:DesiredInstanceCount"
  resource_id        = "endpoint/${aws_sagemaker_endpoint.highlights[0].name}/variant/${local.variant_name}"
  min_capacity       = var.endpoint_instance_count
  max_capacity       = var.autoscaling_max_instances

  lifecycle {
    precondition {
      condition     = var.autoscaling_max_instances >= var.endpoint_instance_count
      error_message = "autoscaling_max_instances must be at least endpoint_instance_count."
    }
  }
}

resource "aws_appautoscaling_policy" "endpoint" {
  count = local.autoscaling_enabled ? 1 : 0

  name               = "${var.name}-invocations-per-instance"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.endpoint[0].service_namespace
  scalable_dimension = aws_appautoscaling_target.endpoint[0].scalable_dimension
  resource_id        = aws_appautoscaling_target.endpoint[0].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.autoscaling_target_invocations
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "SageMakerVariantInvocationsPerInstance"
    }
  }
}
