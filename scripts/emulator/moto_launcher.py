"""Start moto's server with one fix for change sets (test infrastructure only).

moto 5.2.1 builds a stack's outputs when the stack object is created. A CREATE change
set creates that object with an empty template and an UPDATE change set never rebuilds
them, so stacks deployed through change sets come back with no Outputs. Real
CloudFormation returns them; we rebuild the output map after execute_change_set.
"""

import sys

from moto.cloudformation.models import CloudFormationBackend
from moto.server import main

_execute_change_set = CloudFormationBackend.execute_change_set


def _execute_change_set_with_outputs(self, change_set_name, stack_name=None):
    _execute_change_set(self, change_set_name, stack_name)
    for stack in self.stacks.values():
        if stack.template and stack.status.endswith("_COMPLETE"):
            stack._parse_template()
            stack.output_map = stack._create_output_map()


CloudFormationBackend.execute_change_set = _execute_change_set_with_outputs

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
