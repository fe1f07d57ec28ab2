"""Start moto's server with fixes that make it behave as AWS does (test infrastructure only).

Each fix makes moto 5.2.1 do what AWS (CloudFormation, ECR, ECS) does, so tests can assert real
behaviour; product code never knows it talks to an emulator. See docs/testing.md.

1. Outputs after change sets: moto builds a stack's outputs when the stack object is
   created. A CREATE change set creates that object with an empty template and an UPDATE
   change set never rebuilds them, so stacks deployed through change sets come back with
   no Outputs. We rebuild the output map after execute_change_set.
2. Task definitions changed by a stack update: moto registers the new revision with the
   template's PascalCase container keys (Image, Name...), so the revision has no image and
   no name. We convert them to the API's camelCase first, as moto's create path does.
3. Services changed by a stack update: moto passes the task definition's family, not its
   ARN, and stores it as given. We pass the ARN of the revision, as CloudFormation does.
4. What an update touches: moto only updates a resource whose own JSON changed or that
   names a changed parameter with a plain Ref. CloudFormation also updates resources that
   use a changed parameter through Fn::Sub, and resources that refer (Ref, GetAtt, Sub) to
   a resource that gets replaced, e.g. the service whose task definition got a new
   revision (task definitions are always replaced; other types are not followed).
5. What a change set lists: moto lists every resource of the template, also those whose
   Condition is false, and ignores changed parameters. It now lists what CloudFormation
   would do: changed parameters and the cascade of 4 count, and a Condition decides whether
   a resource exists before and after.
6. List parameters in DescribeStacks: moto keeps a CommaDelimitedList parameter as a Python
   list and prints it as "['subnet-a', 'subnet-b']"; CloudFormation returns the value as
   given, "subnet-a,subnet-b". We join the list.
7. CloudWatch over Smithy RPC v2 CBOR, the protocol of the Rust SDK's CloudWatch client:
   moto answers CloudWatch in JSON only; rpcv2_cbor.py translates (alarms and metrics in
   `wsctl status`).
8. ECR and the local registry are one store: ecr_registry.py reads each repository's images
   from the registry that `docker push` writes to, and deletes through ECR's API delete there.
9. ECS services have the tasks they report, in their target groups, and UpdateService starts
   a new deployment that replaces the old one's tasks: ecs_service_tasks.py.
10. AWS::SecretsManager::Secret: moto's CloudFormation has no model for it (the stack would
   only warn and leave it out). We create it in moto's Secrets Manager as CloudFormation
   does: GenerateSecretString makes a random value, Ref is the ARN, an update keeps the value,
   deleting the stack deletes it.
11. AWS::NoValue inside a list (`- !If [Cond, {...}, !Ref AWS::NoValue]`): CloudFormation drops
   the item; moto keeps a null in the list. We drop it.
12. With IAM enforced (INITIAL_NO_AUTH_ACTION_COUNT, scripts/emulator/iam_enforcing.py), moto
   answers a denied JSON-protocol call in XML, so the SDK loses the code (AccessDenied):
   json_denials.py answers in JSON as AWS does.
13. Also with IAM enforced, moto checks Secrets Manager calls against resource "*", so a grant
   on one secret's ARN never matches: we name the secret's ARN, as AWS does.
14. The stack's posture: alarms created by CloudFormation, the ALB metric dimensions
    (LoadBalancerFullName, TargetGroupFullName) and the service's deployment alarms and ECS
    Exec setting: cfn_posture.py.
15. ElastiCache Serverless: moto has no ElastiCache Serverless at all, so a stack with an
    AWS::ElastiCache::ServerlessCache would lose the resource and every GetAtt on it. The
    resource is modelled here as CloudFormation creates it (name, ARN, status available), with
    its endpoint pointing at the local Redis of scripts/services (WSCTL_EMULATOR_REDIS,
    host:port; 127.0.0.1:6379 when unset). What this does not emulate (TLS, ECPU limits,
    metrics) is listed in docs/testing.md.
16. Dotted attributes: moto splits `!GetAtt Cache.Endpoint.Address` at every dot and asks for
    attribute "Endpoint"; CloudFormation splits at the first dot only (attribute
    "Endpoint.Address"). We split once.
17. With IAM enforced, moto names an action after the request's signing name, so CloudWatch
    calls (signed as "monitoring") are checked as monitoring:DescribeAlarms; IAM names them
    cloudwatch:DescribeAlarms, which is what policies grant. We use IAM's prefix.
"""

import json
import os
import re
import sys

import moto.cloudformation.models
import moto.cloudformation.responses

from moto.cloudformation import parsing
from moto.cloudformation.models import Change, ChangeSet, CloudFormationBackend, Stack
from moto.cloudformation.parsing import ResourceMap
from moto.cloudformation.utils import yaml_tag_constructor
from moto.core.common_models import CloudFormationModel
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ecs.models import Service, TaskDefinition
from moto.iam.access_control import IAMRequestBase
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.secretsmanager.models import secretsmanager_backends
from moto.secretsmanager.responses import SecretsManagerResponse
from moto.secretsmanager.utils import random_password
from moto.server import main

import ecr_registry  # noqa: F401 (patches moto's ECR backend on import)
import ecs_service_tasks  # noqa: F401 (patches moto's ECS backend on import)
import json_denials
import rpcv2_cbor
import cfn_posture  # noqa: F401,E402 (last: wraps the ECS service fixes above)

_execute_change_set = CloudFormationBackend.execute_change_set


def _execute_change_set_with_outputs(self, change_set_name, stack_name=None):
    _execute_change_set(self, change_set_name, stack_name)
    # A snapshot: moto's server is threaded, and parallel tests create stacks meanwhile
    # ("OrderedDict mutated during iteration" made ExecuteChangeSet answer 500).
    for stack in list(self.stacks.values()):
        if stack.template and stack.status.endswith("_COMPLETE"):
            stack._parse_template()
            stack.output_map = stack._create_output_map()


CloudFormationBackend.execute_change_set = _execute_change_set_with_outputs

_update_task_definition = TaskDefinition.update_from_cloudformation_json.__func__


def _update_task_definition_camel(cls, original_resource, new_resource_name,
                                  cloudformation_json, account_id, region_name):
    properties = cloudformation_json["Properties"]
    properties["ContainerDefinitions"] = remap_nested_keys(
        properties.get("ContainerDefinitions", []), pascal_to_camelcase)
    if "Volumes" in properties:
        properties["Volumes"] = remap_nested_keys(properties["Volumes"], pascal_to_camelcase)
    else:
        properties["Volumes"] = original_resource.volumes
    return _update_task_definition(cls, original_resource, new_resource_name,
                                   cloudformation_json, account_id, region_name)


TaskDefinition.update_from_cloudformation_json = classmethod(_update_task_definition_camel)

_update_service = Service.update_from_cloudformation_json.__func__


def _update_service_with_arn(cls, original_resource, new_resource_name,
                             cloudformation_json, account_id, region_name):
    properties = cloudformation_json["Properties"]
    if isinstance(properties.get("TaskDefinition"), TaskDefinition):
        properties["TaskDefinition"] = properties["TaskDefinition"].arn
    return _update_service(cls, original_resource, new_resource_name,
                           cloudformation_json, account_id, region_name)


Service.update_from_cloudformation_json = classmethod(_update_service_with_arn)

_build_resource_diff = ResourceMap.build_resource_diff


def _references(node):
    """Names a template fragment depends on: Ref, GetAtt and ${Name} / ${Name.Attr} in Sub."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                if isinstance(text, str):
                    found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
                if isinstance(value, list) and len(value) > 1:
                    found.update(_references(value[1]))
            found.update(_references(value))
    elif isinstance(node, list):
        for item in node:
            found.update(_references(item))
    return found


_ALWAYS_REPLACED = {"AWS::ECS::TaskDefinition"}


def _build_resource_diff_cascading(self, other_template, parameters=None):
    diff = _build_resource_diff(self, other_template, parameters)
    old, new = self._resource_json_map, other_template["Resources"]
    # what changes value for the resources that refer to it
    changed = {n for n in diff["Modify"] if new[n].get("Type") in _ALWAYS_REPLACED}
    if parameters:
        changed.update(p for p in parameters if self.input_parameters.get(p) != parameters[p])
    grew = True
    while grew:
        grew = False
        for name in new:
            if name not in old or not _references(new[name]) & changed:
                continue
            if name not in diff["Modify"]:
                diff["Modify"].append(name)
                grew = True
            if new[name].get("Type") in _ALWAYS_REPLACED and name not in changed:
                changed.add(name)
                grew = True
    order = list(new)
    diff["Modify"].sort(key=order.index)  # template order: dependencies first in our templates
    return diff


ResourceMap.build_resource_diff = _build_resource_diff_cascading

_change_set_diff = ChangeSet.diff


def _conditions(change_set):
    """The template's conditions evaluated with the change set's parameters."""
    stack = change_set.stack
    scratch = ResourceMap(stack.stack_id, stack.name, change_set.parameters, {},
                          stack.region_name, stack.account_id, change_set.template_dict, {})
    scratch.load_mapping()
    scratch.load_parameters()
    scratch.load_conditions()
    return {name: bool(scratch.lazy_condition_map[name])
            for name in change_set.template_dict.get("Conditions", {})}


def _change_set_diff_as_executed(self):
    try:
        conditions = _conditions(self)
    except Exception:  # parameters moto cannot resolve: keep its own listing
        return _change_set_diff(self)
    current = self.stack.resource_map
    diff = current.build_resource_diff(self.template_dict, self.parameters)
    new, old = self.template_dict.get("Resources", {}), current._resource_json_map

    def existed(name):
        condition = old[name].get("Condition") if name in old else None
        return name in old and (condition is None or bool(current.lazy_condition_map[condition]))

    def will_exist(name):
        condition = new[name].get("Condition") if name in new else None
        return name in new and (condition is None or conditions.get(condition, True))

    listed = set(diff["Add"] + diff["Modify"] + diff["Remove"])
    flipped = {n for n in set(new) | set(old) if existed(n) != will_exist(n)}  # by a Condition
    changes = []
    for name in [n for n in list(new) + list(old) if n in listed | flipped]:
        if any(c.logical_resource_id == name for c in changes):
            continue
        before, after = existed(name), will_exist(name)
        action = {(False, True): "Add", (True, True): "Modify", (True, False): "Remove"}.get(
            (before, after))
        if action:
            resource = new.get(name) or old[name]
            changes.append(Change(action=action, logical_resource_id=name,
                                  resource_type=resource["Type"]))
    return changes


ChangeSet.diff = _change_set_diff_as_executed

_parameter_list = Stack.parameter_list.fget


def _parameter_list_as_given(self):
    return [{**p, "ParameterValue": ",".join(p["ParameterValue"])}
            if isinstance(p["ParameterValue"], list) else p
            for p in _parameter_list(self)]


Stack.parameter_list = property(_parameter_list_as_given)



class CloudFormationSecret(CloudFormationModel):
    """AWS::SecretsManager::Secret as CloudFormation makes it (fix 8)."""

    __module__ = "moto.secretsmanager.cloudformation"  # moto files its models by service

    def __init__(self, account_id, region_name, arn):
        self.account_id, self.region_name, self.arn = account_id, region_name, arn

    @staticmethod
    def cloudformation_type():
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @property
    def physical_resource_id(self):
        return self.arn

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name):
        return self.arn

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = cloudformation_json.get("Properties", {})
        value = props.get("SecretString")
        generate = props.get("GenerateSecretString")
        if value is None and generate is not None:
            value = random_password(
                int(generate.get("PasswordLength", 32)),
                generate.get("ExcludeCharacters", ""),
                _true(generate.get("ExcludeNumbers")),
                _true(generate.get("ExcludePunctuation")),
                _true(generate.get("ExcludeUppercase")),
                _true(generate.get("ExcludeLowercase")),
                _true(generate.get("IncludeSpace")),
                _true(generate.get("RequireEachIncludedType", True)),
            )
            if "SecretStringTemplate" in generate:
                document = json.loads(generate["SecretStringTemplate"])
                document[generate["GenerateStringKey"]] = value
                value = json.dumps(document)
        backend = secretsmanager_backends[account_id][region_name]
        created = backend.create_secret(
            name=resource_name, secret_string=value, secret_binary=None,
            description=props.get("Description"), tags=props.get("Tags"),
            kms_key_id=props.get("KmsKeyId"), client_request_token=None,
            replica_regions=[], force_overwrite=False)
        return cls(account_id, region_name, json.loads(created)["ARN"])

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        return original_resource  # the value stays; a generated one is never regenerated

    def delete(self, account_id, region_name):
        secretsmanager_backends[account_id][region_name].delete_secret(
            self.arn, recovery_window_in_days=None, force_delete_without_recovery=True)


def _true(value):
    return value is True or str(value).lower() == "true"


_clean_json = parsing.clean_json


def _clean_json_without_novalue(resource_json, resources_map):
    cleaned = _clean_json(resource_json, resources_map)
    if isinstance(resource_json, list):  # fix 9
        return [item for item in cleaned if item is not None]
    return cleaned


parsing.clean_json = _clean_json_without_novalue



def _secret_resource(self):  # fix 11
    secret_id = self._get_param("SecretId")
    secrets = secretsmanager_backends[self.current_account][self.region].secrets
    secret = secrets.get(secret_id) if secret_id else None
    return secret.arn if secret is not None else "*"


SecretsManagerResponse._determine_resource = _secret_resource

class _ServerlessCache(CloudFormationModel):
    """15. AWS::ElastiCache::ServerlessCache, its endpoint at the local Redis."""

    # moto's model registry files a model under the service named in its module path
    __module__ = "moto.elasticache.serverless"

    def __init__(self, name, properties, account_id, region_name):
        self.name = properties.get("ServerlessCacheName", name)
        self.arn = f"arn:aws:elasticache:{region_name}:{account_id}:serverlesscache:{self.name}"
        host, _, port = os.environ.get("WSCTL_EMULATOR_REDIS", "127.0.0.1:6379").rpartition(":")
        self.address, self.port = host, port

    @staticmethod
    def cloudformation_name_type():
        return "ServerlessCacheName"

    @staticmethod
    def cloudformation_type():
        return "AWS::ElastiCache::ServerlessCache"

    @property
    def physical_resource_id(self):
        return self.name

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in ("ARN", "Status", "Endpoint.Address", "Endpoint.Port",
                        "ReaderEndpoint.Address", "ReaderEndpoint.Port", "FullEngineVersion")

    def get_cfn_attribute(self, attr):
        return {"ARN": self.arn, "Status": "available", "FullEngineVersion": "8.0",
                "Endpoint.Address": self.address, "Endpoint.Port": self.port,
                "ReaderEndpoint.Address": self.address, "ReaderEndpoint.Port": self.port}[attr]

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        return cls(resource_name, cloudformation_json.get("Properties", {}), account_id,
                   region_name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        return cls(new_resource_name, cloudformation_json.get("Properties", {}), account_id,
                   region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):
        return None

    def is_created(self):
        return True


def _tag_constructor_first_dot(loader, tag, node):
    """16. `!GetAtt A.B.C` is resource A, attribute B.C."""
    if tag == "!GetAtt" and isinstance(node.value, str):
        return {"Fn::GetAtt": node.value.split(".", 1)}
    return yaml_tag_constructor(loader, tag, node)


moto.cloudformation.models.yaml_tag_constructor = _tag_constructor_first_dot

moto.cloudformation.responses.yaml_tag_constructor = _tag_constructor_first_dot

# 17. IAM's action prefix for services whose signing name differs from it.
_IAM_PREFIX = {"monitoring": "cloudwatch"}
_iam_request_init = IAMRequestBase.__init__


def _iam_request_with_iam_prefix(self, *args, **kwargs):
    _iam_request_init(self, *args, **kwargs)
    service, _, action = self._action.partition(":")
    if service in _IAM_PREFIX:
        self._action = f"{_IAM_PREFIX[service]}:{action}"


IAMRequestBase.__init__ = _iam_request_with_iam_prefix

_dispatch = DomainDispatcherApplication.__call__
DomainDispatcherApplication.__call__ = lambda self, environ, start_response: json_denials.wrap(
    rpcv2_cbor.wrap(lambda env, start: _dispatch(self, env, start)))(environ, start_response)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
