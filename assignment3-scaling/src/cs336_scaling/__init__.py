"""CS336 assignment 3: IsoFLOPs scaling-law fits, a self-hosted training API and a budgeted scaling study."""
