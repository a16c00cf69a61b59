"""Media in and out: sources (files, RTSP, webcams, image sequences, the embedded demo), sinks, decode/encode threads, annotation records."""
