"""The one exception type for bad input.

Every message names the field (a JSON path such as ``regions[2].w``) and says how to fix it, so the
WebUI, the API and the command line can show it to the user unchanged.
"""


class RegEditError(ValueError):
    """Invalid user input: ``field`` is where, the message says what to do."""

    def __init__(self, field: str, problem: str, fix: str):
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"RegEdit: {field}: {problem}. Fix: {fix}")
