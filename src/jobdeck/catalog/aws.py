"""The ``aws`` section: where the AWS target lands (read only by ``jobdeck deploy aws``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from jobdeck.catalog.spec import Spec, problem

VpcId = Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
SubnetId = Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]
SecurityGroupId = Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]


class Aws(Spec):
    """Where the AWS target lands (read only by ``jobdeck deploy aws``): an existing
    network, and the rules a platform team sets for its accounts."""

    vpc_id: VpcId | None = Field(None, description="an existing VPC; else the stack makes one")
    subnets: list[SubnetId] = Field([], description="subnets of vpc_id for tasks and the host")
    security_groups: list[SecurityGroupId] = Field(
        [], description="security groups of tasks and the tools host; else one with no inbound"
    )
    assign_public_ip: bool = Field(
        True, description="false for private subnets that reach AWS through NAT or endpoints"
    )
    permissions_boundary: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+$",
        description="an IAM policy ARN set as the boundary of every role the stack makes",
    )
    tools_instance_type: str = Field("t3.small", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    tags: dict[str, str] = Field({}, description="tags of every resource")

    @model_validator(mode="after")
    def _network(self) -> Aws:
        if self.vpc_id is None and (self.subnets or self.security_groups):
            raise problem("subnets and security groups belong to a VPC; add 'vpc_id'", "vpc_id")
        if self.vpc_id is not None and not self.subnets:
            raise problem(
                "an existing VPC needs the subnets to use (two or more, in different "
                "availability zones); list them",
                "subnets",
            )
        if self.vpc_id is None and not self.assign_public_ip:
            raise problem(
                "the VPC the stack makes has public subnets only; without a public IP "
                "tasks cannot reach ECR; set 'vpc_id' and 'subnets' of a network with NAT "
                "or VPC endpoints",
                "assign_public_ip",
            )
        return self
