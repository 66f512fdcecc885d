from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    invalid_page_message = "page {page_number} is past the last page"

    def paginate_queryset(self, queryset, request, view=None):
        # A misspelt filter must not quietly return everything.
        allowed = {self.page_query_param, self.page_size_query_param, *getattr(view, "query_filters", ())}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ValidationError({unknown[0]: f"unknown query parameter; this list takes {', '.join(sorted(allowed))}"})
        # Say what is wrong with a page or page_size instead of silently ignoring it.
        for name, upper in ((self.page_query_param, None), (self.page_size_query_param, self.max_page_size)):
            values = request.query_params.getlist(name)
            if not values:
                continue
            if len(values) > 1 or not values[0].isdigit() or int(values[0]) < 1:
                raise ValidationError({name: f"{name} must be a whole number from 1{f' to {upper}' if upper else ''}"})
            if upper and int(values[0]) > upper:
                raise ValidationError({name: f"{name} must be a whole number from 1 to {upper}"})
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        # What paginate_queryset above accepts: whole numbers from 1, a page size up to the maximum.
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.page_query_param: {"minimum": 1},
            self.page_size_query_param: {"minimum": 1, "maximum": self.max_page_size},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
