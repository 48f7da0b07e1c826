"""Data-parallel wrappers, from the naive baseline to bucketed overlap; all share the `DataParallel` surface."""

from cs336_systems.ddp.base import DataParallel
from cs336_systems.ddp.bucketed import BucketedDDP, assign_buckets
from cs336_systems.ddp.flat import FlatDDP
from cs336_systems.ddp.naive import NaiveDDP
from cs336_systems.ddp.overlap import OverlapDDP

__all__ = ["DataParallel", "NaiveDDP", "FlatDDP", "OverlapDDP", "BucketedDDP", "assign_buckets"]
