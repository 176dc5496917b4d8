"""The therapist environment and the self-training loop of ``emd interaction``.

Modules (imported lazily by their users; ``import emd.interaction`` loads nothing heavy):

- :mod:`.scenarios`  the 50 versioned therapist scenarios (``evaluation/interaction/``)
- :mod:`.personas`   seeded user populations: personas, openings, the exact biased fraction
- :mod:`.rating`     the scripted user's documented 1-10 rating rule (MiniLM + phrase counts)
- :mod:`.simulator`  user simulators behind one interface: ``scripted`` and ``openai:<model>``
- :mod:`.dialogue`   multi-turn collection, stored incrementally and resumable
- :mod:`.selection`  top-k / bottom-k by satisfaction; SFT and KTO rows
- :mod:`.adapters`   multi-round training: merge, then compose the rounds' LoRAs into one
- :mod:`.control`    positive control: selection pressure towards validating replies
- :mod:`.plots`      grid and rounds figures
- :mod:`.run`        ``main(cfg)``: the MLflow parent / cell / round runs
"""
