"""Motion capture for the embedded default: BVH reading, retargeting onto anny, the pose library."""
