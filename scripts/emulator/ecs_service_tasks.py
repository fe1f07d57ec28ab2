"""ECS services that have the tasks they report, in their target groups (test infra only).

moto 5.2.1 reports a service's counts (MOTO_ECS_SERVICE_RUNNING) but starts no task, so
`wsctl status` said `running 1` next to "Tasks (none running)" and "Targets (none
registered)". Its UpdateService also keeps the one deployment it made at creation (same id,
old task definition), ListTasks ignores serviceName and lists stopped tasks unasked, and a
service made by CloudFormation loses its LoadBalancers and NetworkConfiguration. Here ECS's
service scheduler is played at once, as a rollout that succeeds would end:

- A service runs min(desired, MOTO_ECS_SERVICE_RUNNING) tasks of its PRIMARY deployment:
  Fargate tasks of the deployment's task definition, startedBy the deployment id, group
  `service:<name>`, each with a network interface (a private address in the service's first
  subnet), RUNNING, and registered in the service's target groups (IP and container port),
  where the emulator's ELBv2 reports a registered target healthy. pending = desired - running;
  the rollout is COMPLETED when running reaches desired, else IN_PROGRESS.
- UpdateService with another task definition, or forceNewDeployment, starts a new PRIMARY
  deployment (new id, the revision's ARN). The tasks of the replaced deployment are STOPPED
  (stopCode ServiceSchedulerInitiated, "Scaling activity initiated by (deployment ...)"),
  their targets deregistered, and the replaced deployment is gone from the list, as after a
  completed rollout. Scaling in stops tasks the same way; DeleteService stops them all.
- Service events say so, newest first: tasks started and stopped, targets registered and
  deregistered, deployment completed, steady state.
- ListTasks filters by serviceName and lists desiredStatus RUNNING unless asked otherwise.
- A task definition has its registeredAt.
- A CloudFormation service keeps its LoadBalancers and NetworkConfiguration, and its task
  definition is the revision CloudFormation made (not the family's newest).

Not played: task placement, image pulls, containers that start (nothing runs), failing health
checks, circuit breaker rollbacks, rollouts that take time (the ops tests use a proxy).
"""

import datetime
import os

from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ec2 import ec2_backends
from moto.ec2.utils import random_private_ip
from moto.ecs.models import (EC2ContainerServiceBackend, Service, Task, TaskDefinition,
                             ecs_backends)
from moto.elbv2.models import elbv2_backends
from moto.moto_api._internal import mock_random

_MAX_EVENTS = 100


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class ServiceTask(Task):
    """A task the service scheduler started: it runs until the scheduler stops it (moto's own
    tasks step toward STOPPED on each DescribeTasks)."""

    __module__ = "moto.ecs.models"  # moto's model registry files models by their module

    @property
    def status(self):
        return self._status

    @status.setter
    def status(self, value):
        self._status = value


def _running_target(service):
    try:
        running = max(int(os.environ.get("MOTO_ECS_SERVICE_RUNNING", 0)), 0)
    except ValueError:
        running = 0
    return min(int(service.desired_count or 0), running)


def _primary(service):
    return next((d for d in service.deployments if d.get("status") == "PRIMARY"), None)


def _event(service, message):
    service.events.insert(0, {"id": str(mock_random.uuid4()), "createdAt": _now(),
                              "message": f"(service {service.name}) {message}"})
    del service.events[_MAX_EVENTS:]


def _attach_network_interface(backend, task, network_configuration):
    config = (network_configuration or {}).get("awsvpcConfiguration") or {}
    subnets = config.get("subnets") or []
    if not subnets:
        return
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    subnet = ec2.get_subnet(subnets[0])
    eni = ec2.create_network_interface(subnet=subnets[0],
                                       private_ip_address=random_private_ip(subnet.cidr_block),
                                       group_ids=config.get("securityGroups") or [],
                                       description=f"ECS task {task.id}")
    eni.status = "in-use"
    task.availability_zone = subnet.availability_zone
    task.attachments = [{
        "id": str(mock_random.uuid4()),
        "type": "ElasticNetworkInterface",
        "status": "ATTACHED",
        "details": [
            {"name": "subnetId", "value": subnets[0]},
            {"name": "networkInterfaceId", "value": eni.id},
            {"name": "macAddress", "value": eni.mac_address},
            {"name": "privateDnsName", "value": eni.private_dns_name},
            {"name": "privateIPv4Address", "value": eni.private_ip_address},
        ],
    }]
    task.private_ip = eni.private_ip_address


def _start_task(backend, service, deployment):
    cluster = backend._get_cluster(service.cluster_name)
    task_definition = backend.describe_task_definition(deployment["taskDefinition"])
    network = service.network_configuration or None
    awsvpc = task_definition.network_mode == "awsvpc"
    task = ServiceTask(
        cluster, task_definition, None, None, backend,  # Fargate: no instance to place on
        group=f"service:{service.name}", launch_type="FARGATE", started_by=deployment["id"],
        networking_configuration=network if awsvpc else None,
        platform_version=service.platform_version)
    task.private_ip = None
    if awsvpc:
        details = {d["name"]: d["value"] for d in task.attachments[0]["details"]}
        task.private_ip = details.get("privateIPv4Address")
        subnet = ec2_backends[backend.account_id][backend.region_name].get_subnet(
            details["subnetId"])
        task.availability_zone = subnet.availability_zone
    else:
        # The template's task definition is awsvpc; moto's CloudFormation drops networkMode.
        _attach_network_interface(backend, task, network)
    now = _now()
    task.service_name = service.name
    task.capacity_provider_name = "FARGATE"
    task.connectivity, task.connectivity_at = "CONNECTED", now
    task.created_at = task.pull_started_at = task.pull_stopped_at = task.started_at = now
    task.cpu = None if task_definition.cpu is None else str(task_definition.cpu)
    task.memory = None if task_definition.memory is None else str(task_definition.memory)
    healthy = any(c.get("healthCheck") for c in task_definition.container_definitions)
    task.health_status = "HEALTHY" if healthy else "UNKNOWN"
    task.last_status = "RUNNING"
    for container in task.containers:
        container.last_status = "RUNNING"
        # strings in ECS's model; moto copies the definition's numbers
        container.cpu = None if container.cpu is None else str(container.cpu)
        container.memory = None if container.memory is None else str(container.memory)
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    return task


def _stop_task(task, deployment_id):
    now = _now()
    task.desired_status = "STOPPED"
    task.last_status = "STOPPED"
    task.stop_code = "ServiceSchedulerInitiated"
    task.stopped_reason = f"Scaling activity initiated by (deployment {deployment_id})"
    task.stopping_at = task.execution_stopped_at = task.stopped_at = now
    task.connectivity = "DISCONNECTED"
    for container in task.containers:
        container.last_status = "STOPPED"
        container.exitCode = 0


def _targets(backend, service, tasks, register):
    """(Re|De)registers the tasks in the service's target groups; one event per group."""
    elbv2 = elbv2_backends[backend.account_id][backend.region_name]
    for balancer in service.load_balancers or []:
        arn = balancer.get("targetGroupArn")
        group = elbv2.target_groups.get(arn)
        targets = [{"Id": t.private_ip, "Port": balancer.get("containerPort")}
                   for t in tasks if t.private_ip]
        if group is None or not targets:
            continue
        if register:
            group.register(targets)
        else:
            targets = [t for t in targets if t["Id"] in group.targets]
            if not targets:
                continue
            group.deregister(targets)
        verb = "registered" if register else "deregistered"
        _event(service, f"{verb} {len(targets)} targets in (target-group {arn})")


def _service_tasks(backend, service):
    return [t for t in list(backend.tasks.get(service.cluster_name, {}).values())
            if isinstance(t, ServiceTask) and t.service_name == service.name
            and t.desired_status == "RUNNING"]


def _schedule(backend, service):
    """Makes the service run what its PRIMARY deployment asks for, at once."""
    deployment = _primary(service)
    if deployment is None:
        return
    desired = int(service.desired_count or 0) if service.status == "ACTIVE" else 0
    running = _running_target(service) if service.status == "ACTIVE" else 0
    service.running_count, service.pending_count = running, desired - running
    current = _service_tasks(backend, service)
    ours = [t for t in current if t.started_by == deployment["id"]]
    stopping = [t for t in current if t.started_by != deployment["id"]] + ours[running:]
    started = [_start_task(backend, service, deployment) for _ in range(running - len(ours))]
    if started:
        ids = " ".join(f"(task {t.id})" for t in started)
        _event(service, f"has started {len(started)} tasks: {ids}.")
        _targets(backend, service, started, register=True)
    if stopping:
        _targets(backend, service, stopping, register=False)
        for task in stopping:
            _stop_task(task, deployment["id"])
        ids = " ".join(f"(task {t.id})" for t in stopping)
        _event(service, f"has stopped {len(stopping)} running tasks: {ids}.")
    done = running >= desired
    was_done = deployment.get("rolloutState") == "COMPLETED"
    deployment.update({
        "desiredCount": desired, "runningCount": running, "pendingCount": desired - running,
        "taskDefinition": service.task_definition, "updatedAt": _now(),
        "rolloutState": "COMPLETED" if done else "IN_PROGRESS",
        "rolloutStateReason": f"ECS deployment {deployment['id']} "
                              f"{'completed' if done else 'in progress'}.",
    })
    if done and (started or stopping or not was_done) and service.status == "ACTIVE":
        _event(service, f"(deployment {deployment['id']}) deployment completed.")
        _event(service, "has reached a steady state.")


def _new_deployment(service):
    """A new PRIMARY deployment for the service's task definition; the old one is replaced."""
    old = _primary(service) or {}
    now = _now()
    deployment = {**old, "id": f"ecs-svc/{mock_random.randint(0, 32 ** 12)}", "createdAt": now,
                  "updatedAt": now, "status": "PRIMARY", "failedTasks": 0,
                  "taskDefinition": service.task_definition, "rolloutState": "IN_PROGRESS"}
    service.deployments = [deployment]


_register_task_definition = EC2ContainerServiceBackend.register_task_definition


def _register_task_definition_dated(self, *args, **kwargs):
    task_definition = _register_task_definition(self, *args, **kwargs)
    task_definition.registered_at = _now()  # moto leaves it out; `wsctl releases` shows it
    return task_definition


EC2ContainerServiceBackend.register_task_definition = _register_task_definition_dated

_create_service = EC2ContainerServiceBackend.create_service


def _create_service_with_tasks(self, *args, **kwargs):
    service = _create_service(self, *args, **kwargs)
    if service.task_definition and service.deployments:
        service.deployments[0]["rolloutState"] = "IN_PROGRESS"
        _schedule(self, service)
    return service


EC2ContainerServiceBackend.create_service = _create_service_with_tasks

_update_service = EC2ContainerServiceBackend.update_service


def _update_service_with_deployments(self, service_properties):
    service = self._get_service(service_properties.get("cluster", "default"),
                                service_properties["service"].split("/")[-1])
    before = service.task_definition
    force = service_properties.get("force_new_deployment", False)
    service = _update_service(self, service_properties)
    if service.task_definition:
        # ECS keeps the revision's ARN, whatever form the request named it in.
        service.task_definition = self.describe_task_definition(service.task_definition).arn
    if service.deployments and (force or service.task_definition != before):
        _new_deployment(service)
    _schedule(self, service)
    return service


EC2ContainerServiceBackend.update_service = _update_service_with_deployments

_delete_service = EC2ContainerServiceBackend.delete_service


def _delete_service_stopping_tasks(self, cluster_name, service_name, force):
    service = _delete_service(self, cluster_name, service_name, force)
    _schedule(self, service)
    return service


EC2ContainerServiceBackend.delete_service = _delete_service_stopping_tasks

_list_tasks = EC2ContainerServiceBackend.list_tasks


def _list_tasks_as_ecs(self, cluster_str=None, container_instance=None, family=None,
                       started_by=None, service_name=None, desiredStatus=None):
    tasks = _list_tasks(self, cluster_str, container_instance, family, started_by, None,
                        desiredStatus or "RUNNING")
    if service_name:
        name = service_name.split("/")[-1]
        tasks = [t for t in tasks if t.group == f"service:{name}"]
    return tasks


EC2ContainerServiceBackend.list_tasks = _list_tasks_as_ecs


def _create_service_from_cloudformation(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
    """moto's own, keeping what it marked TODO: load balancers, network configuration, the
    revision's ARN and the Fargate capacity."""
    properties = cloudformation_json["Properties"]
    cluster = properties["Cluster"]
    cluster = getattr(cluster, "name", cluster)
    task_definition = properties["TaskDefinition"]
    if isinstance(task_definition, TaskDefinition):
        task_definition = task_definition.arn
    strategy = properties.get("CapacityProviderStrategy") or []
    fargate = any(str(s.get("CapacityProvider", "")).startswith("FARGATE") for s in strategy)
    network = properties.get("NetworkConfiguration")
    desired = properties.get("DesiredCount")
    return ecs_backends[account_id][region_name].create_service(
        cluster, resource_name,
        int(desired) if desired is not None else None,
        task_definition_str=task_definition,
        load_balancers=remap_nested_keys(properties.get("LoadBalancers") or [],
                                         pascal_to_camelcase),
        launch_type=properties.get("LaunchType") or ("FARGATE" if fargate else None),
        platform_version=properties.get("PlatformVersion"),
        network_configuration=remap_nested_keys(network, pascal_to_camelcase)
        if network else None,
    )


Service.create_from_cloudformation_json = classmethod(_create_service_from_cloudformation)
