"""The AWS side: the S3, DynamoDB and SES implementations of the small interfaces, the claim
records kept in S3, the MediaConvert and SageMaker requests a run sends, what runs inside those
jobs and behind the endpoint, and the dry run that checks every request against the service
models. The clients are boto3's, passed in by the caller."""
