"""Running the stages: the frame processor, the file/stream pipeline, many streams, the shared detector, batch jobs (local and Ray), metrics."""
