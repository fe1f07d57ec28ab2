"""CloudFormation as AWS does it for the stack's production posture (test infrastructure only).

Imported by moto_launcher.py, after the other fixes (it wraps what they installed). moto 5.2.1:

a. has no CloudFormation model for AWS::CloudWatch::Alarm: the alarms of a stack were never
   created. A model here creates them with PutMetricAlarm, Ref is the alarm name and GetAtt Arn
   its ARN, as in CloudFormation; updates put the alarm again, deletes remove it.
b. does not resolve GetAtt LoadBalancer.LoadBalancerFullName (NotImplementedError) nor
   TargetGroup.TargetGroupFullName, the CloudWatch dimensions of the ALB metrics: both are the
   tail of the ARN (app/<name>/<id>, targetgroup/<name>/<id>), as in AWS.
c. drops a service's DeploymentConfiguration (its deployment alarms, the circuit breaker) and
   EnableExecuteCommand when CloudFormation creates or updates the service: they are kept and
   DescribeServices returns them.
d. creates the default VPC without an internet gateway, so its subnets would look private: in
   AWS the default VPC has one attached and a 0.0.0.0/0 route to it in the main route table
   (its subnets are public). wsctl's preflight tells public from private by that route.
"""

from moto.cloudformation import parsing
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ec2.models import EC2Backend
from moto.ecs.models import Service
from moto.elbv2.models import FakeLoadBalancer, FakeTargetGroup


# --- a. alarms ----------------------------------------------------------------------------
class StackAlarm(CloudFormationModel):
    """An alarm CloudFormation made; the alarm itself lives in moto's CloudWatch backend."""

    __module__ = "moto.cloudwatch.cfn_posture"  # moto's model registry keys models by service

    def __init__(self, alarm):
        self.alarm = alarm

    @staticmethod
    def cloudformation_type():
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type():
        return "AlarmName"

    @property
    def physical_resource_id(self):
        return self.alarm.name

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name):
        if attribute_name == "Arn":
            return self.alarm.alarm_arn
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        p = cloudformation_json["Properties"]
        backend = cloudwatch_backends[account_id][region_name]
        alarm = backend.put_metric_alarm(
            name=p.get("AlarmName") or resource_name,
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p["Period"]) if "Period" in p else None,
            threshold=float(p["Threshold"]) if "Threshold" in p else None,
            statistic=p.get("Statistic"),
            extended_statistic=p.get("ExtendedStatistic"),
            description=p.get("AlarmDescription"),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]}
                        for d in p.get("Dimensions") or []],
            alarm_actions=[a for a in p.get("AlarmActions") or [] if a],
            ok_actions=[a for a in p.get("OKActions") or [] if a],
            insufficient_data_actions=[a for a in p.get("InsufficientDataActions") or [] if a],
            datapoints_to_alarm=int(p["DatapointsToAlarm"]) if "DatapointsToAlarm" in p else None,
            treat_missing_data=p.get("TreatMissingData"),
            unit=p.get("Unit"),
            actions_enabled=str(p.get("ActionsEnabled", True)).lower() == "true",
        )
        return cls(alarm)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        name = cloudformation_json["Properties"].get("AlarmName")
        if name and name != original_resource.alarm.name:
            cloudwatch_backends[account_id][region_name].delete_alarms(
                [original_resource.alarm.name])
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                   account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])


# the model map is built once, on first use: make sure it sees the alarm model
parsing.get_model_list.cache_clear()
parsing.get_model_map.cache_clear()
parsing.get_name_type_map.cache_clear()


# --- b. the ALB metrics' dimensions --------------------------------------------------------
_lb_attribute = FakeLoadBalancer.get_cfn_attribute


def _lb_attribute_full_name(self, attribute_name):
    if attribute_name == "LoadBalancerFullName":
        return self.arn.split(":loadbalancer/", 1)[1]
    return _lb_attribute(self, attribute_name)


FakeLoadBalancer.get_cfn_attribute = _lb_attribute_full_name

_tg_has_attr = FakeTargetGroup.has_cfn_attr.__func__


def _tg_attribute_full_name(self, attribute_name):
    if attribute_name == "TargetGroupFullName":
        return self.arn.split(":", 5)[5]
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
    raise UnformattedGetAttTemplateException()


FakeTargetGroup.has_cfn_attr = classmethod(
    lambda cls, attr: attr == "TargetGroupFullName" or _tg_has_attr(cls, attr))
FakeTargetGroup.get_cfn_attribute = _tg_attribute_full_name


# --- c. the service's deployment configuration and ECS Exec --------------------------------
def _keep_posture(service, properties):
    config = properties.get("DeploymentConfiguration")
    if config:
        service.deployment_configuration = remap_nested_keys(config, pascal_to_camelcase)
    if "EnableExecuteCommand" in properties:
        service.enable_execute_command = str(properties["EnableExecuteCommand"]).lower() == "true"
    return service


_create_service = Service.create_from_cloudformation_json.__func__
_update_service = Service.update_from_cloudformation_json.__func__


def _create_service_keeping_posture(cls, resource_name, cloudformation_json, account_id,
                                    region_name, **kwargs):
    service = _create_service(cls, resource_name, cloudformation_json, account_id, region_name,
                              **kwargs)
    return _keep_posture(service, cloudformation_json["Properties"])


def _update_service_keeping_posture(cls, original_resource, new_resource_name,
                                    cloudformation_json, account_id, region_name):
    service = _update_service(cls, original_resource, new_resource_name, cloudformation_json,
                              account_id, region_name)
    return _keep_posture(service, cloudformation_json["Properties"])


Service.create_from_cloudformation_json = classmethod(_create_service_keeping_posture)
Service.update_from_cloudformation_json = classmethod(_update_service_keeping_posture)


# --- d. the default VPC is public ----------------------------------------------------------
_create_default_vpc = EC2Backend.create_default_vpc


def _create_default_vpc_with_gateway(self):
    vpc = _create_default_vpc(self)
    gateway = self.create_internet_gateway()
    self.attach_internet_gateway(gateway.id, vpc.id)
    main = next(t for t in list(self.route_tables.values()) if t.vpc_id == vpc.id)
    self.create_route(main.id, "0.0.0.0/0", gateway_id=gateway.id)
    return vpc


EC2Backend.create_default_vpc = _create_default_vpc_with_gateway
