"""An AWS emulator of a test's own that enforces IAM, and the users to call it as.

Test infrastructure (docs/testing.md, "IAM enforcement"): moto checks every request against the
calling access key's IAM policies once its first INITIAL_NO_AUTH_ACTION_COUNT requests are
spent. This script spends exactly those on an administrator, so a test can set up queues and
stacks as the administrator and then act with the policy under test and nothing else.

  iam_enforcing.py serve
      Starts the emulator (the launcher's fixes included) on a free 127.0.0.1 port and prints
      one JSON line, {"endpoint": URL, "admin": {"access_key_id", "secret_access_key"}}, once it
      answers; serves until stdin closes (the test ends) or the process is killed.

The other commands talk to that emulator as the administrator (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and print one JSON document:

  iam_enforcing.py stack NAME TEMPLATE [--default-network] [--parameter KEY=VALUE...]
      Creates a CloudFormation stack and prints {"outputs": {...}, "resources": {logical:
      physical}}. --default-network fills VpcId, SubnetIds and VpcCidrs from the default VPC.
  iam_enforcing.py role-user USER --stack NAME --role LOGICAL_ID [--without ACTION...]
                              [--drop-action ACTION...] [--any-resource]
      Creates user USER holding the role's inline policies as CloudFormation stored them,
      minus every statement granting an ACTION (--without), minus each --drop-action from the
      statements that list it, and prints its access key {"access_key_id",
      "secret_access_key"}. --any-resource grants each statement's actions on "*" without its
      conditions: what moto can check for services it checks against resource "*" only and
      whose conditions it does not evaluate (docs/testing.md, "IAM enforcement"); the
      resources and conditions are then the template's own test's business.
"""

import argparse
import ast
import json
import os
import socket
import sys

ADMIN_SETUP_REQUESTS = 3  # CreateUser, PutUserPolicy, CreateAccessKey


def serve():
    # moto reads the count when its settings are first imported
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(ADMIN_SETUP_REQUESTS)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import boto3
    import moto_launcher  # noqa: F401  (applies the launcher's fixes)
    from moto.server import ThreadedMotoServer
    from moto.iam.access_control import IAMRequestBase

    # moto recomputes a form-encoded body's signature differently from the SDKs for some
    # characters (a CloudFormation template in CreateChangeSet fails with SignatureDoesNotMatch
    # although the SDK signed it right). The access key still decides which policies apply;
    # the secret is not what these tests prove (docs/testing.md, "IAM enforcement").
    IAMRequestBase.check_signature = lambda self: None

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="setup", aws_secret_access_key="setup")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="everything", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    print(json.dumps({"endpoint": endpoint, "admin": {
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"]}}), flush=True)
    sys.stdin.read()
    server.stop()


def client(service):
    import boto3
    return boto3.client(service, region_name=os.environ.get("AWS_REGION", "us-east-1"))


def stack(args):
    parameters = dict(p.split("=", 1) for p in args.parameters)
    if args.default_network:
        ec2 = client("ec2")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
        subnets = ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
        parameters.setdefault("VpcId", vpc["VpcId"])
        parameters.setdefault("SubnetIds", ",".join(s["SubnetId"] for s in subnets[:2]))
        parameters.setdefault("VpcCidrs", vpc["CidrBlock"])
    cfn = client("cloudformation")
    with open(args.template) as template:
        cfn.create_stack(StackName=args.name, TemplateBody=template.read(),
                         Capabilities=["CAPABILITY_NAMED_IAM"],
                         Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                     for k, v in parameters.items()])
    cfn.get_waiter("stack_create_complete").wait(StackName=args.name)
    described = cfn.describe_stacks(StackName=args.name)["Stacks"][0]
    resources = cfn.list_stack_resources(StackName=args.name)["StackResourceSummaries"]
    return {"outputs": {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
            "resources": {r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                          for r in resources}}


def role_user(args):
    cfn, iam = client("cloudformation"), client("iam")
    # (moto's DescribeStackResource fails on stacks with resources it does not model)
    summaries = cfn.list_stack_resources(StackName=args.stack)["StackResourceSummaries"]
    role_name = next(r["PhysicalResourceId"] for r in summaries
                     if r["LogicalResourceId"] == args.role)
    iam.create_user(UserName=args.user)
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):
            # moto returns a role policy CloudFormation made as Python's repr of the dict
            document = ast.literal_eval(document) if document.startswith("{'") else json.loads(document)
        statements = document["Statement"]
        statements = statements if isinstance(statements, list) else [statements]
        kept = [s for s in statements if not granted(s, args.without)]
        kept = [narrowed(s, args.drop_actions, args.any_resource) for s in kept]
        kept = [s for s in kept if s["Action"]]
        if kept:
            iam.put_user_policy(UserName=args.user, PolicyName=name, PolicyDocument=json.dumps(
                {**document, "Statement": kept}))
    key = iam.create_access_key(UserName=args.user)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def narrowed(statement, dropped, any_resource):
    listed = statement.get("Action", [])
    listed = listed if isinstance(listed, list) else [listed]
    statement = {**statement, "Action": [a for a in listed if a not in dropped]}
    if any_resource:
        statement["Resource"] = "*"
        statement.pop("Condition", None)
    return statement


def granted(statement, actions):
    listed = statement.get("Action", [])
    listed = listed if isinstance(listed, list) else [listed]
    return any(a in listed for a in actions)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve")
    p = commands.add_parser("stack")
    p.add_argument("name")
    p.add_argument("template")
    p.add_argument("--default-network", action="store_true")
    p.add_argument("--parameter", action="append", default=[], dest="parameters",
                   metavar="KEY=VALUE")
    p = commands.add_parser("role-user")
    p.add_argument("user")
    p.add_argument("--stack", required=True)
    p.add_argument("--role", required=True)
    p.add_argument("--without", action="append", default=[], metavar="ACTION")
    p.add_argument("--drop-action", action="append", default=[], dest="drop_actions",
                   metavar="ACTION")
    p.add_argument("--any-resource", action="store_true")
    args = parser.parse_args()
    if args.command == "serve":
        serve()
    else:
        print(json.dumps({"stack": stack, "role-user": role_user}[args.command](args)))


if __name__ == "__main__":
    main()
