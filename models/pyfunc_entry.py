"""MLflow "models from code" entry point: logged as the model's code instead of a pickled object.

MLflow executes this file when it loads the model, so the released artifact contains no
cloudpickle payload; the class itself comes from the installed ``models.candidate`` (whose
feature-set version is checked against the artifact in ``load_context``). Never import this
module from project code: it registers the model as a side effect, by design of the API.
"""

from mlflow.models import set_model

from models.candidate import CandidatePyfunc

set_model(CandidatePyfunc())
