"""Copy a backup job's archives to remotes with rclone, or stream a new one to a remote, list
them there, restore from there (inside an ops container): ``python -m jobs.tools.remote``, the
request (``jobs.protocol.remote``) on stdin. The modules: ``cli`` (``main``), ``rclone`` (a
destination's rclone processes, their environment and secrets), ``copying`` (uploads,
retention, listing, fetching) and ``streaming`` (the archive piped into ``rclone rcat``)."""
