"""Review apps for GitLab merge requests on AWS Fargate: the code shared by every function."""
