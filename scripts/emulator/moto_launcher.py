"""Start moto's server with fixes for stack updates (test infrastructure only).

Each fix makes moto 5.2.1 do what real CloudFormation does, so tests can assert real
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
   a resource being updated, e.g. the service whose task definition got a new revision.
"""

import re
import sys

from moto.cloudformation.models import CloudFormationBackend
from moto.cloudformation.parsing import ResourceMap
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ecs.models import Service, TaskDefinition
from moto.server import main

_execute_change_set = CloudFormationBackend.execute_change_set


def _execute_change_set_with_outputs(self, change_set_name, stack_name=None):
    _execute_change_set(self, change_set_name, stack_name)
    for stack in self.stacks.values():
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


def _build_resource_diff_cascading(self, other_template, parameters=None):
    diff = _build_resource_diff(self, other_template, parameters)
    old, new = self._resource_json_map, other_template["Resources"]
    changed = set(diff["Modify"])
    if parameters:
        changed.update(p for p in parameters if self.input_parameters.get(p) != parameters[p])
    grew = True
    while grew:
        grew = False
        for name in new:
            if name in old and name not in diff["Modify"] and _references(new[name]) & changed:
                diff["Modify"].append(name)
                changed.add(name)
                grew = True
    order = list(new)
    diff["Modify"].sort(key=order.index)  # template order: dependencies first in our templates
    return diff


ResourceMap.build_resource_diff = _build_resource_diff_cascading

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
