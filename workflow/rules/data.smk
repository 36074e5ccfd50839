# Data: (fake files ->) download + md5 check, one job per file -> prepared train/val/test arrays.


rule make_fake_archive:
    """A small archive in the real format, for the demo and tests (enabled by `fake:`)."""
    output:
        FAKE_ARCHIVE,
    wildcard_constraints:
        dataset="|".join(ARCHIVE_DATASETS),
    params:
        flags=lambda wildcards: commands.fake_flags(config, wildcards.dataset),
    log:
        f"{LOGS}/make_fake_archive/{{dataset}}/{{archive}}.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet data fake --format {wildcards.dataset} {params.flags} --out {output:q}"
        " > {log:q} 2>&1"


# A folder data set's fake files come from one job (one generator run writes them all), so each
# gets a rule of its own: make_fake_svhn.
for _dataset in FOLDER_DATASETS:

    rule:
        """A folder data set's small files in the real format, written by one job (`fake:`)."""
        name:
            f"make_fake_{_dataset}"
        output:
            [fake_file(_dataset, f.name) for f in spec.dataset_spec(_dataset).files],
        params:
            dataset=_dataset,
            flags=commands.fake_flags(config, _dataset),
            folder=lambda wildcards, output: os.path.dirname(output[0]),
        localrule: True
        log:
            f"{LOGS}/make_fake_{_dataset}/{_dataset}.log",
        conda:
            "../envs/sdnet.yaml"
        shell:
            "sdnet data fake --format {params.dataset} {params.flags} --out {params.folder:q}"
            " > {log:q} 2>&1"


rule download_dataset:
    """Fetch one file (https, file:// or a plain path) and verify its md5."""
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
    """Archive (SVHN: its folder) -> train/val/test .npz + meta.json (val.npz only with a
    validation split)."""
    input:
        prepare_input,
    output:
        train=f"{DATA_DIR}/train.npz",
        test=f"{DATA_DIR}/test.npz",
        meta=f"{DATA_DIR}/meta.json",
    params:
        archive=prepare_archive,
        flags=lambda wildcards: commands.prepare_flags(config, wildcards.dataset),
    threads: config["data_workers"]
    log:
        f"{LOGS}/prepare_dataset/{{dataset}}.log",
    conda:
        "../envs/sdnet.yaml"
    shell:
        "sdnet data prepare --dataset {wildcards.dataset} --archive {params.archive:q}"
        ' {params.flags} --workers {threads} --out "$(dirname {output.meta:q})" > {log:q} 2>&1'
