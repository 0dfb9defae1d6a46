"""The app knows where it lives: the install's variables, the spec's `env:` and `secrets:`, and
ecs-params secrets, as the registered task definition holds them, through the real handlers
against moto and the GitLab stand-in. Secrets are passed on as references only."""

from __future__ import annotations

import boto3

from local.world import EXECUTION_ROLE, PROJECT_ID, PROJECT_PATH, REGION, REVIEW_DOMAIN, World

SHA1, SHA2, SHA3 = "1" * 40, "2" * 40, "3" * 40
BASE = "task_definition: shop-web\ntrigger: merge_request\n"
OWN = f"/review-apps/{PROJECT_ID}/"
HOST = f"awesome-project-mr1-p{PROJECT_ID}.{REVIEW_DOMAIN}"


def registered(world: World, iid: int = 1) -> dict:
    [task] = [t for t in world.tasks() if t["group"].endswith(f":{iid}")]
    return world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]


def environment(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("environment") or []}


def secrets(container: dict) -> dict[str, str]:
    return {s["name"]: s["valueFrom"] for s in container.get("secrets") or []}


def with_execution_role(world: World) -> None:
    world.register_base_task_definition(executionRoleArn=EXECUTION_ROLE)


def secret_arn(name: str, projects: str | None) -> str:
    client = boto3.client("secretsmanager", region_name=REGION)
    tags = [{"Key": "review-apps:projects", "Value": projects}] if projects is not None else []
    return client.create_secret(Name=name, SecretString="never-read", Tags=tags)["ARN"]


def test_ip_mode_the_app_is_told_its_merge_request_and_gets_its_settings_and_secrets(world: World, tally):
    with_execution_role(world)
    spec = BASE + (
        "env:\n"
        "  DJANGO_SETTINGS_MODULE: shop.settings.review\n"
        "  RELEASE: shop-${CI_COMMIT_SHORT_SHA}\n"
        "secrets:\n"
        f"  DATABASE_PASSWORD: {OWN}db-password\n"
        f"  API_KEY: arn:aws:ssm:{REGION}:111122223333:parameter{OWN}api-key\n"
    )
    world.commit(SHA1, spec=spec)
    assert world.open_mr(1, SHA1, branch="feature/Login_Page")["status"] == 202
    [web] = registered(world)["containerDefinitions"]
    told = environment(web)
    assert told == {
        "DJANGO_SETTINGS_MODULE": "shop.settings.review",
        "RELEASE": "shop-11111111",
        "REVIEW_APP": "true",
        "CI_ENVIRONMENT_NAME": "review/feature-login-page",
        "CI_MERGE_REQUEST_IID": "1",
        "CI_COMMIT_SHA": SHA1,
        "CI_COMMIT_SHORT_SHA": "11111111",
        "CI_COMMIT_REF_NAME": "feature/Login_Page",
        "CI_COMMIT_REF_SLUG": "feature-login-page",
        "CI_PROJECT_ID": str(PROJECT_ID),
        "CI_PROJECT_PATH": PROJECT_PATH,
    }  # IP mode: no address yet, so no REVIEW_APP_URL, CI_ENVIRONMENT_URL or REVIEW_APP_HOST
    assert secrets(web) == {
        "DATABASE_PASSWORD": f"{OWN}db-password",
        "API_KEY": f"arn:aws:ssm:{REGION}:111122223333:parameter{OWN}api-key",
    }
    tally["variables told, one MR"] += len(told)


def test_address_mode_the_app_is_told_where_it_lives_and_placeholders_fill_in(alb_world: World):
    world = alb_world
    world.commit(SHA1, spec=BASE + "env:\n  ALLOWED_ORIGIN: ${REVIEW_APP_URL}\n")
    world.open_mr(1, SHA1)
    [web] = registered(world)["containerDefinitions"]
    told = environment(web)
    assert told["REVIEW_APP_URL"] == told["CI_ENVIRONMENT_URL"] == f"https://{HOST}"
    assert told["REVIEW_APP_HOST"] == HOST and told["ALLOWED_ORIGIN"] == f"https://{HOST}"


def test_the_installs_values_win_over_the_base_definitions(world: World):
    world.register_base_task_definition(
        containerDefinitions=[
            {
                "name": "web",
                "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/shop:latest",
                "essential": True,
                "memory": 512,
                "command": ["gunicorn"],
                "portMappings": [{"containerPort": 8000}],
                "environment": [{"name": "CI_COMMIT_SHA", "value": "stale"}, {"name": "KEEP", "value": "me"}],
            }
        ]
    )
    world.commit(SHA1, spec=BASE)
    world.open_mr(1, SHA1)
    told = environment(registered(world)["containerDefinitions"][0])
    assert told["CI_COMMIT_SHA"] == SHA1 and told["KEEP"] == "me"


def test_a_new_commit_and_a_woken_app_are_told_again(make_world):
    world = make_world(alb=True)
    spec = BASE + "sleep_after: 15m\n"
    world.commit(SHA1, spec=spec)
    world.open_mr(1, SHA1)
    world.commit(SHA2, spec=spec)
    world.push(1, SHA2)
    world.task_event(world.record(1)["task_arn"], "RUNNING")
    assert environment(registered(world)["containerDefinitions"][0])["CI_COMMIT_SHA"] == SHA2
    world.live_for(1, 20)
    world.reconcile()
    world.stopped_as_asked(world.record(1)["task_arn"])
    assert "Waking up" in world.visit(HOST)["body"]
    told = environment(registered(world)["containerDefinitions"][0])
    assert told["CI_COMMIT_SHA"] == SHA2 and told["REVIEW_APP_URL"] == f"https://{HOST}"


def test_what_a_project_may_not_name_is_refused_and_nothing_launches(world: World, tally):
    with_execution_role(world)
    foreign = secret_arn("other-team/db", "other_group/")
    untagged = secret_arn("loose/db", None)
    spec = BASE + (
        "env:\n"
        "  CI_COMMIT_SHA: mine\n"
        "  9LIVES: x\n"
        "  DEBUG: true\n"
        "  URL: ${REVIEW_APP_URL}\n"
        "secrets:\n"
        "  OTHER_PROJECT: /review-apps/15/db\n"
        "  ELSEWHERE: /prod/db-password\n"
        f"  CLIMBING: {OWN}../15/db\n"
        f"  FOREIGN: {foreign}\n"
        f"  UNTAGGED: {untagged}\n"
        "  OTHER_ACCOUNT: arn:aws:ssm:us-east-1:999999999999:parameter/review-apps/14/db\n"
        f"  REVIEW_APP_HOST: {OWN}x\n"
    )
    world.commit(SHA1, spec=spec)
    answer = world.open_mr(1, SHA1)
    assert answer["status"] == 200 and world.tasks() == []
    note = world.note(1)
    assert "Review app: not deployed" in note
    for fragment in (
        "`env.CI_COMMIT_SHA` is set by review apps themselves",
        "`env:` `9LIVES` is not a variable name",
        "`env.DEBUG:` `true` must be a string",
        "`secrets.REVIEW_APP_HOST` is set by review apps themselves",
    ):
        assert fragment in note, fragment
    refused = note.count("which this project may not use: a secret must be an SSM parameter under")
    assert refused == 0  # the spec's own problems come first: nothing was looked up yet
    # With the spec's mistakes fixed: an address in IP mode is explained...
    world.commit(SHA2, spec=BASE + "env:\n  URL: ${REVIEW_APP_URL}\n")
    world.push(1, SHA2)
    assert "`env.URL`: `${REVIEW_APP_URL}` is known only when review apps have addresses" in world.note(1)
    # ...and every reference the project does not own is refused, each named.
    secrets_only = "secrets:\n" + spec.split("secrets:\n", 1)[1].replace(f"  REVIEW_APP_HOST: {OWN}x\n", "")
    world.commit(SHA3, spec=BASE + secrets_only)
    world.push(1, SHA3)
    note = world.note(1)
    for variable in ("OTHER_PROJECT", "ELSEWHERE", "CLIMBING", "FOREIGN", "UNTAGGED", "OTHER_ACCOUNT"):
        assert f"Secret `{variable}` names" in note, variable
    assert "never-read" not in note and world.tasks() == []
    tally["secret references refused"] += 6


def test_a_secret_tagged_for_the_project_is_passed_on_as_a_reference(world: World):
    with_execution_role(world)
    arn = secret_arn("shop/review-db", "awesome_space/")
    world.commit(SHA1, spec=BASE + f'secrets:\n  DB_PASSWORD: "{arn}:password::"\n')
    answer = world.open_mr(1, SHA1)
    assert answer["status"] == 202, world.note(1)
    web = registered(world)["containerDefinitions"][0]
    assert secrets(web) == {"DB_PASSWORD": f"{arn}:password::"}
    assert "never-read" not in str(registered(world)) and "never-read" not in str(world.all_records())


def test_secrets_need_an_execution_role(world: World):
    world.commit(SHA1, spec=BASE + f"secrets:\n  DB_PASSWORD: {OWN}db\n")
    world.open_mr(1, SHA1)
    assert "ECS fetches at start with the task execution role" in world.note(1) and world.tasks() == []


COMPOSE = """\
services:
  web:
    image: 111122223333.dkr.ecr.us-east-1.amazonaws.com/shop-backend:${CI_COMMIT_SHA}
    ports: ["8000"]
    mem_limit: 1g
    environment:
      DATABASE_HOST: localhost
      DATABASE_URL: postgres://shop@db:5432/shop
      PUBLIC_URL: ${REVIEW_APP_URL:-http://localhost}
    depends_on:
      migrate:
        condition: service_completed_successfully
      db:
        condition: service_healthy
  migrate:
    image: 111122223333.dkr.ecr.us-east-1.amazonaws.com/shop-backend:${CI_COMMIT_SHA}
    command: ["python", "manage.py", "migrate", "--noinput"]
    mem_limit: 256m
    depends_on:
      db:
        condition: service_healthy
  db:
    image: docker.io/library/postgres:16
    mem_limit: 512m
    environment:
      POSTGRES_USER: shop
      POSTGRES_DB: shop
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U shop -d shop"]
      interval: 5s
      timeout: 3s
      retries: 10
      start_period: 10s
"""
PARAMS = f"""\
version: 1
task_definition:
  task_execution_role: {EXECUTION_ROLE}
  task_size:
    cpu_limit: 1024
    mem_limit: 2GB
  services:
    migrate:
      essential: false
    db:
      essential: true
      secrets:
        - name: POSTGRES_PASSWORD
          value_from: {OWN}db-password
"""
RECIPE_SPEC = (
    "compose: docker-compose.yml\necs_params: ecs-params.yml\ntrigger: merge_request\ncontainer: web\n"
    f"secrets:\n  DATABASE_PASSWORD: {OWN}db-password\n"
)


def test_the_database_recipe(make_world):
    """README's recipe: PostgreSQL beside the app, a one-shot migration the app waits for, the
    password from an SSM parameter of the project's, and every container told its MR."""
    world = make_world(SHARED_IMAGE_PREFIXES="docker.io/library/nginx,docker.io/library/postgres")
    world.commit(SHA1, spec=RECIPE_SPEC, extra_files={"docker-compose.yml": COMPOSE, "ecs-params.yml": PARAMS})
    assert world.open_mr(1, SHA1)["status"] == 202
    definition = registered(world)
    web, migrate, db = definition["containerDefinitions"]
    assert [c["name"] for c in (web, migrate, db)] == ["web", "migrate", "db"]
    assert web["dependsOn"] == [
        {"containerName": "migrate", "condition": "SUCCESS"},
        {"containerName": "db", "condition": "HEALTHY"},
    ]
    assert migrate["dependsOn"] == [{"containerName": "db", "condition": "HEALTHY"}] and migrate["essential"] is False
    assert db["healthCheck"]["command"] == ["CMD-SHELL", "pg_isready -U shop -d shop"]
    assert db["healthCheck"]["interval"] == 5 and db["healthCheck"]["retries"] == 10
    # ecs-params' secrets go to their service; the spec's to every container of a compose app.
    assert secrets(db) == {"POSTGRES_PASSWORD": f"{OWN}db-password", "DATABASE_PASSWORD": f"{OWN}db-password"}
    assert secrets(web) == secrets(migrate) == {"DATABASE_PASSWORD": f"{OWN}db-password"}
    assert all(environment(c)["CI_MERGE_REQUEST_IID"] == "1" for c in (web, migrate, db))
    assert environment(web)["PUBLIC_URL"] == "http://localhost"  # IP mode: the default
    assert definition["executionRoleArn"] == EXECUTION_ROLE
    note = world.note(1)
    assert "`services.web.environment.DATABASE_URL` reaches service `db` by name" in note
    assert "(here `localhost:5432`), never by service name" in note


def test_compose_file_secrets_are_refused_with_where_to_put_them(world: World):
    compose = COMPOSE.replace("  db:\n    image:", "  db:\n    secrets: [db_password]\n    image:") + (
        "secrets:\n  db_password:\n    file: ./db_password.txt\n"
    )
    world.commit(SHA1, spec=RECIPE_SPEC, extra_files={"docker-compose.yml": compose, "ecs-params.yml": PARAMS})
    world.open_mr(1, SHA1)
    note = world.note(1)
    assert "`services.db.secrets`: compose `secrets` are files, which Fargate cannot mount" in note
    assert "`secrets`: compose `secrets` are files" in note and world.tasks() == []


def test_ecs_params_secrets_follow_the_same_ownership_rule(world: World):
    params = PARAMS.replace(f"value_from: {OWN}db-password", "value_from: /review-apps/15/db-password")
    compose = COMPOSE.replace("docker.io/library/postgres:16", "docker.io/library/nginx:1")
    spec = "compose: docker-compose.yml\necs_params: ecs-params.yml\ntrigger: merge_request\ncontainer: web\n"
    world.commit(SHA1, spec=spec, extra_files={"docker-compose.yml": compose, "ecs-params.yml": params})
    world.open_mr(1, SHA1)
    assert "Secret `POSTGRES_PASSWORD` names `/review-apps/15/db-password`" in world.note(1)
    assert world.tasks() == []


def test_a_secret_ecs_cannot_fetch_is_explained_on_the_mr(world: World):
    with_execution_role(world)
    world.commit(SHA1, spec=BASE + f"secrets:\n  DB_PASSWORD: {OWN}missing\n")
    world.open_mr(1, SHA1)
    world.task_event(
        world.record(1)["task_arn"],
        "STOPPED",
        stop_code="TaskFailedToStart",
        stopped_reason="ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
        "retrieval failed: unable to retrieve secrets from ssm: service call has been retried 1 time(s)",
    )
    note = world.note(1)
    assert "Review app: could not start" in note and "ECS could not fetch the app's secrets" in note
    assert "`ssm:GetParameters`" in note
