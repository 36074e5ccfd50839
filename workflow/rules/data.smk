# Data: (fake archive ->) download + md5 check -> prepared train/val/test arrays.


rule make_fake_archive:
    """A small archive in the real format, for the demo and tests (enabled by `fake:`)."""
    output:
        FAKE_ARCHIVE,
    params:
        flags=fake_flags,
    log:
        f"{LOGS}/make_fake_archive/{{dataset}}/{{archive}}.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet data fake --format {wildcards.dataset} {params.flags} --out {output:q}"
        " > {log:q} 2>&1"


rule download_dataset:
    """Fetch (https, file:// or a plain path) and verify the archive's md5."""
    input:
        download_input,
    output:
        RAW_ARCHIVE,
    params:
        flags=download_flags,
    log:
        f"{LOGS}/download_dataset/{{dataset}}/{{archive}}.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet data download --dataset {wildcards.dataset} {params.flags}"
        ' --out "$(dirname {output:q})" > {log:q} 2>&1'


rule prepare_dataset:
    """Archive -> train/val/test .npz arrays + meta.json (val.npz only with a validation split)."""
    input:
        archive=prepare_input,
    output:
        train=f"{DATA_DIR}/train.npz",
        test=f"{DATA_DIR}/test.npz",
        meta=f"{DATA_DIR}/meta.json",
    params:
        flags=prepare_flags,
    threads: config["data_workers"]
    log:
        f"{LOGS}/prepare_dataset/{{dataset}}.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet data prepare --dataset {wildcards.dataset} --archive {input.archive:q}"
        ' {params.flags} --workers {threads} --out "$(dirname {output.meta:q})" > {log:q} 2>&1'
