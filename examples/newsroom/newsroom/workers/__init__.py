"""The newsroom's queue programs: plain boto3 code, as it runs against SQS on AWS."""
