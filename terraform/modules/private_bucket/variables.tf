variable "bucket" {
  type        = string
  description = "Globally unique bucket name."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "bucket must be a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for default SSE-KMS encryption."
}

variable "log_bucket" {
  type        = string
  description = "Bucket that receives this bucket's server access logs."
}

variable "log_prefix" {
  type        = string
  description = "Key prefix of this bucket's access logs in the log bucket."
}

variable "expiring_prefixes" {
  type        = list(string)
  description = "Key prefixes whose objects expire after expiry_days."
  default     = []
}

variable "expiry_days" {
  type        = number
  description = "Days after which objects under expiring_prefixes expire."
  default     = 7

  validation {
    condition     = var.expiry_days >= 1 && floor(var.expiry_days) == var.expiry_days
    error_message = "expiry_days must be a whole number of at least 1."
  }
}

variable "noncurrent_version_days" {
  type        = number
  description = "Days a noncurrent object version is kept before deletion."
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "noncurrent_version_days must be a whole number of at least 1."
  }
}
