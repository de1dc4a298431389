variable "region" {
  type        = string
  description = "AWS region for every resource (MediaConvert, SageMaker and SES must be available there)."
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like an AWS region code, e.g. eu-west-1."
  }
}

variable "name" {
  type        = string
  description = "Name prefix for every resource. Bucket names add the account id and region to it."
  default     = "highlights"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags applied to every resource through the provider's default_tags."
  default     = {}
}

variable "input_prefix" {
  type        = string
  description = "Key prefix in the input bucket where matches are uploaded; new objects under it are sent to the upload queue."
  default     = "incoming/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$", var.input_prefix))
    error_message = "input_prefix must be a relative key prefix ending in \"/\" (e.g. \"incoming/\"), without a leading \"/\"."
  }
}

variable "work_retention_days" {
  type        = number
  description = "Days after which frames and features in the work bucket expire."
  default     = 7

  validation {
    condition     = var.work_retention_days >= 1 && var.work_retention_days <= 365 && floor(var.work_retention_days) == var.work_retention_days
    error_message = "work_retention_days must be a whole number between 1 and 365."
  }
}

variable "noncurrent_version_retention_days" {
  type        = number
  description = "Days a replaced (noncurrent) object version is kept in the versioned buckets before it is deleted."
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1 && floor(var.noncurrent_version_retention_days) == var.noncurrent_version_retention_days
    error_message = "noncurrent_version_retention_days must be a whole number of at least 1."
  }
}

variable "access_log_retention_days" {
  type        = number
  description = "Days S3 server access logs are kept in the access-log bucket."
  default     = 90

  validation {
    condition     = var.access_log_retention_days >= 1 && floor(var.access_log_retention_days) == var.access_log_retention_days
    error_message = "access_log_retention_days must be a whole number of at least 1."
  }
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before the customer managed KMS key is deleted after a destroy."
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30 (an AWS limit)."
  }
}

variable "queue_visibility_timeout_seconds" {
  type        = number
  description = "The queue's default visibility timeout, for consumers that set none of their own. The highlights_uploads DAG sets its own on every receive ([highlights] upload_visibility_seconds, 900 s), so this does not apply to it."
  default     = 300

  validation {
    condition     = var.queue_visibility_timeout_seconds >= 0 && var.queue_visibility_timeout_seconds <= 43200
    error_message = "queue_visibility_timeout_seconds must be between 0 and 43200 (an SQS limit)."
  }
}

variable "queue_max_receive_count" {
  type        = number
  description = "Receives after which an upload message that was never deleted moves to the dead-letter queue. Each receive hides it for the DAG's upload_visibility_seconds (900 s), so 5 receives give a failing dispatch about 75 minutes, longer than the hourly sweep's interval."
  default     = 5

  validation {
    condition     = var.queue_max_receive_count >= 1 && var.queue_max_receive_count <= 1000
    error_message = "queue_max_receive_count must be between 1 and 1000."
  }
}

variable "deploy_endpoint" {
  type        = bool
  description = "Create the SageMaker model, endpoint configuration and endpoint. Set false for the first apply, before the model image is pushed and model.tar.gz uploaded."
  default     = true
}

variable "model_image_uri" {
  type        = string
  description = "ECR image URI (with tag or digest) of the model serving container (model_container/). Required when deploy_endpoint is true."
  default     = ""

  validation {
    condition     = var.model_image_uri == "" || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.model_image_uri))
    error_message = "model_image_uri must be an ECR image URI with a tag or digest, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/highlights:model-1."
  }
}

variable "processing_image_uri" {
  type        = string
  description = "ECR image URI of the SageMaker Processing container (processing/). Empty means the model image is used."
  default     = ""

  validation {
    condition     = var.processing_image_uri == "" || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.processing_image_uri))
    error_message = "processing_image_uri must be empty or an ECR image URI with a tag or digest."
  }
}

variable "model_data_uri" {
  type        = string
  description = "S3 URI of the model archive (model.tar.gz) under the models/ prefix of the highlights bucket. Required when deploy_endpoint is true."
  default     = ""

  validation {
    condition     = var.model_data_uri == "" || can(regex("^s3://[a-z0-9.-]{3,63}/(.+/)?model\\.tar\\.gz$", var.model_data_uri))
    error_message = "model_data_uri must be an s3:// URI of an archive named model.tar.gz (the scoring job and the serving container unpack only that name)."
  }
}

variable "endpoint_instance_type" {
  type        = string
  description = "SageMaker instance type of the endpoint's production variant."
  default     = "ml.m5.large"

  validation {
    condition     = can(regex("^ml\\.[a-z0-9]+\\.[a-z0-9]+$", var.endpoint_instance_type))
    error_message = "endpoint_instance_type must be a SageMaker instance type such as ml.m5.large."
  }
}

variable "endpoint_instance_count" {
  type        = number
  description = "Initial (and, with autoscaling, minimum) number of endpoint instances."
  default     = 1

  validation {
    condition     = var.endpoint_instance_count >= 1 && floor(var.endpoint_instance_count) == var.endpoint_instance_count
    error_message = "endpoint_instance_count must be a whole number of at least 1."
  }
}

variable "enable_autoscaling" {
  type        = bool
  description = "Register the endpoint variant with Application Auto Scaling (target tracking on invocations per instance)."
  default     = false
}

variable "autoscaling_max_instances" {
  type        = number
  description = "Maximum number of endpoint instances when autoscaling is enabled; must be at least endpoint_instance_count."
  default     = 4

  validation {
    condition     = var.autoscaling_max_instances >= 1 && floor(var.autoscaling_max_instances) == var.autoscaling_max_instances
    error_message = "autoscaling_max_instances must be a whole number of at least 1."
  }
}

variable "autoscaling_target_invocations" {
  type        = number
  description = "Target value of SageMakerVariantInvocationsPerInstance (invocations per instance per minute) for the scaling policy."
  default     = 100

  validation {
    condition     = var.autoscaling_target_invocations > 0
    error_message = "autoscaling_target_invocations must be positive."
  }
}

variable "sender_email" {
  type        = string
  description = "Address highlight emails are sent from. Terraform creates its SES identity; AWS mails a verification link to it."

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.sender_email))
    error_message = "sender_email must be an email address."
  }
}

variable "recipient_emails" {
  type        = list(string)
  description = "Addresses that receive the highlight email for each match."

  validation {
    condition     = length(var.recipient_emails) > 0 && alltrue([for e in var.recipient_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "recipient_emails must be a non-empty list of email addresses."
  }

  validation {
    condition     = length(var.recipient_emails) <= 20
    error_message = "At most 20 recipients: the worker policy names each one's SES identity and IAM caps a managed policy at 6,144 characters (use a mailing list address instead)."
  }
}

variable "verify_recipients" {
  type        = bool
  description = "Also create SES identities for the recipients; needed while the account is in the SES sandbox, where only verified addresses receive mail."
  default     = false
}

variable "link_expiry_seconds" {
  type        = number
  description = "Lifetime of the presigned download links in the email. SigV4 caps it at 7 days, and links die earlier if the signing credentials expire first."
  default     = 604800

  validation {
    condition     = var.link_expiry_seconds >= 60 && var.link_expiry_seconds <= 604800
    error_message = "link_expiry_seconds must be between 60 and 604800 (7 days, the SigV4 maximum)."
  }
}

variable "mediaconvert_endpoint" {
  type        = string
  description = "Account-specific MediaConvert API endpoint. Empty means the DAG discovers it with DescribeEndpoints."
  default     = ""

  validation {
    condition     = var.mediaconvert_endpoint == "" || can(regex("^https://", var.mediaconvert_endpoint))
    error_message = "mediaconvert_endpoint must be empty or an https:// URL."
  }
}

variable "airflow_role_name" {
  type        = string
  description = "Name of an existing IAM role the Airflow workers run as; the worker policy is attached to it. Empty creates the policy without attaching it."
  default     = ""
}

variable "processing_job_prefix" {
  type        = string
  description = "Prefix of the SageMaker Processing job names the DAG creates (highlights.aws.sagemaker_jobs.job_name uses \"hl-\"); the worker policy may only create and stop jobs named so."
  default     = "hl-"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}$", var.processing_job_prefix))
    error_message = "processing_job_prefix must be lowercase letters, digits and hyphens (SageMaker ARNs are lowercase)."
  }
}
