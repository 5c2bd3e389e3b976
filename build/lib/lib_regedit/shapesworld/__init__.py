"""ShapesWorld: the project's small real text-to-image model (issue 4).

``data`` generates the synthetic world, ``model`` defines the SD-architecture stack, ``train`` trains
it on CPU, ``export`` writes the shipped weights (diffusers folder + WebUI single file), ``convert``
maps diffusers keys to the LDM layout and ``verify`` checks the two agree.
"""
