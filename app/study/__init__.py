"""`affect-monitor analyze` over a whole study: resumable, on many cores or a cluster.

    inputs  what the command line names -> one ``StudyFile`` per media file / session
    task    the per-file task: one input -> its output folder, written atomically; the
            only code the local pool and the Dask cluster run
    engines where tasks run: here, a local process pool, or a Dask distributed cluster
    table   study.csv / study.parquet (one row per file) and failures.csv
    run     plan (skip what is up to date), run, progress bars, tables
    cli     the command line
"""
