"""CDK assertions for commands: the tools host, SSM documents and the Slack bot Lambda."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aws_cdk.assertions import Match

from jobdeck.commands.spec import LightCommand, command_json
from tests.aws.conftest import Assembly


def test_tools_host_is_ssm_managed_without_ssh(newsroom: Assembly) -> None:
    newsroom.cdk.resource_count_is("AWS::EC2::Instance", 1)
    instance = newsroom.one("AWS::EC2::Instance")
    assert "KeyName" not in instance
    image_parameter = instance["ImageId"]["Ref"]
    assert "al2023" in image_parameter
    assert newsroom.template["Parameters"][image_parameter]["Default"].startswith(
        "/aws/service/ami-amazon-linux-latest/al2023-ami-"
    )
    newsroom.cdk.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {"LaunchTemplateData": {"MetadataOptions": {"HttpTokens": "required"}}},
    )
    # Unique per stack, so that two projects can share an account and region.
    name = newsroom.one("AWS::EC2::LaunchTemplate")["LaunchTemplateName"]
    assert name != "InstanceLaunchTemplate"
    assert "jobdecknewsroom" in name
    # No security group of the stack lets anything in (no port 22, no other).
    for group in newsroom.resources("AWS::EC2::SecurityGroup").values():
        assert "SecurityGroupIngress" not in group["Properties"]
    newsroom.cdk.resource_count_is("AWS::EC2::SecurityGroupIngress", 0)
    newsroom.cdk.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": Match.object_like(
                {"Statement": [Match.object_like({"Principal": {"Service": "ec2.amazonaws.com"}})]}
            ),
            "ManagedPolicyArns": Match.array_with(
                [
                    {
                        "Fn::Join": [
                            "",
                            [
                                "arn:",
                                {"Ref": "AWS::Partition"},
                                ":iam::aws:policy/AmazonSSMManagedInstanceCore",
                            ],
                        ]
                    }
                ]
            ),
        },
    )


def test_one_ssm_document_per_command_with_typed_params(newsroom: Assembly) -> None:
    document = newsroom.one("AWS::SSM::Document", Name="newsroom-command-breaking-push")
    assert document["DocumentType"] == "Command"
    content = document["Content"]
    assert content["parameters"] == {
        "title": {
            "type": "String",
            "description": "a string value",
            "interpolationType": "ENV_VAR",
            "allowedPattern": "^[\\s\\S]{0,120}$",
        },
        "url": {
            "type": "String",
            "description": "a url value",
            "interpolationType": "ENV_VAR",
            "allowedPattern": "^https?://[^\\s]+$",
        },
        "audience": {
            "type": "String",
            "description": "a choice value",
            "interpolationType": "ENV_VAR",
            "allowedValues": ["all", "ios", "android"],
            "default": "all",
        },
    }
    inputs = content["mainSteps"][0]["inputs"]
    assert inputs["timeoutSeconds"] == "120"
    assert '--title "${SSM_title}"' in inputs["runCommand"][-1]
    assert "{{" not in json.dumps(content)  # no param is pasted into the script's text


def test_param_patterns_follow_the_catalog(variants: Assembly) -> None:
    params = variants.one("AWS::SSM::Document", Name="variants-command-restart-cache")["Content"][
        "parameters"
    ]
    assert params["name"]["allowedPattern"] == "^(?:[a-z]+)$"
    assert "default" not in params["name"]
    assert params["count"]["allowedPattern"] == "^$|^[+-]?[0-9]+$"  # optional: may be empty
    assert params["count"]["default"] == ""


def test_slack_bot_lambda_with_function_url_and_notices(newsroom: Assembly) -> None:
    function = newsroom.logical_id("AWS::Lambda::Function", FunctionName="newsroom-slack-bot")
    newsroom.cdk.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": "newsroom-slack-bot",
            "Runtime": "python3.12",
            "Handler": "jobdeck.targets.aws.lambda_handler.handler",
            "Timeout": 900,
        },
    )
    newsroom.cdk.has_resource_properties(
        "AWS::Lambda::Url",
        {"AuthType": "NONE", "TargetFunctionArn": {"Fn::GetAtt": [function, "Arn"]}},
    )
    topic = next(iter(newsroom.resources("AWS::SNS::Topic")))
    newsroom.cdk.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "lambda",
            "TopicArn": {"Ref": topic},
            "Endpoint": {"Fn::GetAtt": [function, "Arn"]},
        },
    )
    policies = json.dumps(newsroom.resources("AWS::IAM::Policy"))
    assert '"ssm:SendCommand"' in policies
    assert '"ssm:GetCommandInvocation"' in policies


def test_lambda_code_is_the_handler_and_bolt(newsroom: Assembly) -> None:
    code = newsroom.one("AWS::Lambda::Function", FunctionName="newsroom-slack-bot")["Code"]
    asset_hash = code["S3Key"].removesuffix(".zip")
    folder = newsroom.outdir / f"asset.{asset_hash}"
    assert (folder / "jobdeck/targets/aws/lambda_handler.py").is_file()
    assert (folder / "slack_bolt/adapter/aws_lambda/handler.py").is_file()
    assert (folder / "slack_sdk/web/client.py").is_file()
    assert not (folder / "jobdeck/catalog/model.py").exists()  # no pydantic at cold start
    assert (folder / "jobdeck/slack/blocks.py").is_file()  # the local bot's messages
    assert (folder / "jobdeck/commands/decide.py").is_file()
    config = json.loads(Path(folder / "jobdeck/targets/aws/commands.json").read_text())
    assert config["slashes"] == ["/breaking"]
    push = config["commands"]["breaking-push"]
    assert push["document"] == "newsroom-command-breaking-push"
    assert push["allow"] == {"channels": ["C0EDITORIAL"], "users": [], "usergroups": ["S0EDITORS"]}
    assert push["params"]["title"]["type"] == "string"
    assert push["params"]["title"]["required"] is True
    catalog_push = newsroom.loaded.catalog.commands["breaking-push"]
    assert LightCommand.load(push) == LightCommand.load(command_json(catalog_push))
    assert list(push["params"]) == list(catalog_push.params)  # help follows this order
    assert push["timeout_seconds"] == 120


def test_the_lambda_modules_import_no_heavy_library(newsroom: Assembly) -> None:
    """Imported from the asset alone (as on Lambda), the handler and the pure modules it
    shares with the local bot load neither pydantic, SQLAlchemy nor Starlette."""
    code = newsroom.one("AWS::Lambda::Function", FunctionName="newsroom-slack-bot")["Code"]
    folder = newsroom.outdir / f"asset.{code['S3Key'].removesuffix('.zip')}"
    probe = (
        "import sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "import jobdeck.targets.aws.lambda_handler as handler\n"
        f"assert handler.__file__.startswith({str(folder)!r}), handler.__file__\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'pydantic', 'pydantic_core', 'sqlalchemy', 'starlette', 'alembic'})\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
