# SES mails a verification link to each address; sending works once it is clicked.
resource "aws_ses_email_identity" "sender" {
  email = var.sender_email
}

# In the SES sandbox recipients must be verified identities too.
resource "aws_ses_email_identity" "recipient" {
  for_each = var.verify_recipients ? toset(var.recipient_emails) : toset([])

  email = each.value
}

locals {
  ses_identity_arn_prefix = "arn:${local.partition}:ses:${local.arn_suffix}:identity"
  # SES authorizes SendEmail against every identity involved, which in the sandbox includes the
  # recipients, so the worker policy names them as well as the sender.
  ses_identity_arns = concat(
    [aws_ses_email_identity.sender.arn],
    [for e in var.recipient_emails : "${local.ses_identity_arn_prefix}/${e}"],
  )
}
