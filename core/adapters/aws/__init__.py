"""Real AWS adapters (boto3): artifacts on S3, serving on SageMaker, monitors on CloudWatch,
variant autoscaling on Application Auto Scaling.

boto3 is imported only when one of them is built; nothing connects at import.
"""

from core.adapters.aws.autoscaling import VariantScaling
from core.adapters.aws.cloudwatch import CloudWatchMonitor
from core.adapters.aws.s3 import S3ArtifactStore
from core.adapters.aws.sagemaker import SageMakerServing
from core.adapters.aws.session import AwsClients

__all__ = [
    "AwsClients",
    "CloudWatchMonitor",
    "S3ArtifactStore",
    "SageMakerServing",
    "VariantScaling",
]
