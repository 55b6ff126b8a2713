"""Named bundles of training settings: ``steadynet train --preset NAME``.

A preset is a dict of :class:`steadynet.TrainConfig` fields; options given explicitly
override it, and the run's ``config.json`` records the preset's name (``preset``) beside the
resolved settings. Every value here was chosen on the validation split (5,000 images held
out of the training set), never on the test set; ``tta="auto"`` goes further and decides at
the end of each run, on its own validation split, whether to test with test-time
augmentation (:mod:`steadynet.tta`). ``docs/accuracy.md`` lists what each preset
measured, on which machine and in how long.
"""

PRESETS = {
    # the seed's 784-30-10 sigmoid network, as well trained as we can make it: the defaults
    # (Nesterov, batch 64, cosine, one-pixel shifts) plus an average of the weights.
    "seed": dict(
        hidden=(30,),
        activation="sigmoid",
        optimizer="nesterov",
        learning_rate=0.05,
        batch_size=64,
        epochs=150,
        schedule="cosine",
        augment_shift=1,
        ema_decay=0.999,
        augment_trial=3,
        tta="auto",
    ),
    # the best accuracy in about a minute of training on a 2-core CPU: one wide ReLU layer.
    "fast": dict(
        hidden=(512,),
        activation="relu",
        optimizer="nesterov",
        learning_rate=0.05,
        batch_size=128,
        epochs=25,
        schedule="cosine",
        warmup_epochs=0.5,
        augment_shift=1,
        dropout=0.2,
        ema_decay=0.998,
        augment_trial=2,
        tta="auto",
    ),
    # the highest accuracy in under 20 minutes on a 2-core CPU: two layers of 800 ReLU units
    # (Simard et al. 2003) with affine and elastic warps, dropout and max-norm
    # (Srivastava et al. 2014), an average of the weights, and centred inputs (the first layer
    # trained as if every pixel had mean 0: 99.49% validation against 99.43% uncentred, 3 seeds).
    "best": dict(
        hidden=(800, 800),
        activation="relu",
        optimizer="nesterov",
        learning_rate=0.05,
        batch_size=128,
        epochs=100,
        schedule="cosine",
        warmup_epochs=1.0,
        augment_shift=2,
        augment_rotate=10.0,
        augment_scale=0.1,
        augment_shear=10.0,
        elastic_alpha=34.0,
        elastic_sigma=5.0,
        dropout=0.1,
        max_norm=3.0,
        ema_decay=0.9995,
        augment_trial=3,
        centre_inputs="on",
        tta="auto",
    ),
}
