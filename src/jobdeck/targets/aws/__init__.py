"""The AWS target: the catalog as a CDK app (EventBridge Scheduler, Step Functions, ECS on
Fargate, SQS, SSM and a Slack bot on Lambda). Needs the ``aws`` extra.

The pure parts (:mod:`.cron`, :mod:`.sizing`, :mod:`.checks`) import no CDK, so that the
catalog can be checked for AWS without starting jsii.
"""
