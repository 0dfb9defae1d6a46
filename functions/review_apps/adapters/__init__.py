"""I/O at the edges: DynamoDB (store), ECS/EC2 (ecs) and GitLab (gitlab). No lifecycle rules here."""
