# One item per sliding window of a match: scores per class and whether it was picked.
resource "aws_dynamodb_table" "results" {
  name         = "${var.name}-window-results"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "match_id"
  range_key    = "start_ms"

  attribute {
    name = "match_id"
    type = "S"
  }

  attribute {
    name = "start_ms"
    type = "N"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }

  deletion_protection_enabled = true
}
