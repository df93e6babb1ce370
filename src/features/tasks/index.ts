// What the composition root and the app use of background tasks: the admin's service and routes.
export { createTasksService, type TasksService } from './service.js'
export { tasksRoutes } from './routes.js'
