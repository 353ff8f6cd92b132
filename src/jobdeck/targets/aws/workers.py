"""Workers: an ECS service each, with its capacity, deployment limits and autoscaling."""

from __future__ import annotations

from aws_cdk import Tags
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobdeck.catalog.model import Autoscale
from jobdeck.targets.aws.containers import task_definition
from jobdeck.targets.aws.mapping import WorkerOnAws
from jobdeck.targets.aws.services import WORKER_TAG


def capacity_strategy(capacity: str) -> list[ecs.CapacityProviderStrategy]:
    """``spot``: one task on regular Fargate (so a Spot reclaim never stops them all), the
    rest on Fargate Spot. ``on_demand``: all on regular Fargate."""
    if capacity == "spot":
        return [
            ecs.CapacityProviderStrategy(capacity_provider="FARGATE", base=1, weight=0),
            ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=1),
        ]
    return [ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1)]


class Workers(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        workers: tuple[WorkerOnAws, ...],
        cluster: ecs.Cluster,
        subnets: list[ec2.ISubnet],
        security_groups: list[ec2.ISecurityGroup],
        assign_public_ip: bool,
        queues: dict[str, sqs.Queue],
        log_group: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.services: dict[str, ecs.FargateService] = {}
        for item in workers:
            spec = item.spec
            queue = queues.get(spec.queue) if spec.queue else None
            environment = {"JOBDECK_WORKER": item.name}
            if queue is not None:
                environment["JOBDECK_QUEUE_URL"] = queue.queue_url
            definition = task_definition(
                self,
                item.name,
                spec=spec,
                size=item.size,
                stop_after=spec.stop_grace,
                log_group=log_group,
                environment=environment,
                # How the alerts tell whose task stopped.
                family=f"{project}-worker-{item.name}",
            )
            desired = spec.desired_replicas if spec.enabled else 0
            service = ecs.FargateService(
                self,
                f"{item.name}-service",
                cluster=cluster,
                task_definition=definition,
                desired_count=desired,
                # singleton: stop the old task before starting its replacement.
                max_healthy_percent=100 if spec.singleton else 200,
                min_healthy_percent=0 if spec.singleton else 100,
                capacity_provider_strategies=capacity_strategy(spec.capacity),
                assign_public_ip=assign_public_ip,
                vpc_subnets=ec2.SubnetSelection(subnets=subnets),
                security_groups=security_groups,
                circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            )
            self.services[item.name] = service
            # How `jobdeck suspend --target aws` and the keeper find the service.
            Tags.of(service).add(WORKER_TAG, item.name)
            if spec.autoscale is not None and queue is not None and spec.enabled:
                self._autoscale(item.name, spec.autoscale, cluster, service, queue)

    def _autoscale(
        self,
        name: str,
        autoscale: Autoscale,
        cluster: ecs.Cluster,
        service: ecs.FargateService,
        queue: sqs.Queue,
    ) -> None:
        target = appscaling.ScalableTarget(
            self,
            f"{name}-scaling",
            service_namespace=appscaling.ServiceNamespace.ECS,
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=f"service/{cluster.cluster_name}/{service.service_name}",
            min_capacity=autoscale.min,
            max_capacity=autoscale.max,
        )
        cooldown = int(autoscale.cooldown.total_seconds())
        policy = appscaling.CfnScalingPolicy
        query = policy.TargetTrackingMetricDataQueryProperty
        stat = policy.TargetTrackingMetricStatProperty
        metric = policy.TargetTrackingMetricProperty
        dimension = policy.TargetTrackingMetricDimensionProperty
        policy(
            self,
            f"{name}-backlog-per-task",
            policy_name=f"{name}-backlog-per-task",
            policy_type="TargetTrackingScaling",
            scaling_target_id=target.scalable_target_id,
            target_tracking_scaling_policy_configuration=policy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(autoscale.backlog_per_replica),
                scale_in_cooldown=cooldown,
                scale_out_cooldown=cooldown,
                customized_metric_specification=policy.CustomizedMetricSpecificationProperty(
                    metrics=[
                        query(
                            id="visible",
                            return_data=False,
                            metric_stat=stat(
                                stat="Sum",
                                metric=metric(
                                    namespace="AWS/SQS",
                                    metric_name="ApproximateNumberOfMessagesVisible",
                                    dimensions=[
                                        dimension(name="QueueName", value=queue.queue_name)
                                    ],
                                ),
                            ),
                        ),
                        query(
                            id="running",
                            return_data=False,
                            metric_stat=stat(
                                stat="Average",
                                metric=metric(
                                    namespace="ECS/ContainerInsights",
                                    metric_name="RunningTaskCount",
                                    dimensions=[
                                        dimension(name="ClusterName", value=cluster.cluster_name),
                                        dimension(name="ServiceName", value=service.service_name),
                                    ],
                                ),
                            ),
                        ),
                        # Backlog per task; with no task running the whole backlog counts,
                        # so that a service scaled to zero scales out again.
                        query(
                            id="backlog_per_task",
                            label="visible messages per running task",
                            expression="visible / IF(running < 1, 1, running)",
                            return_data=True,
                        ),
                    ]
                ),
            ),
        )
